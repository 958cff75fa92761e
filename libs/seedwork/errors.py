"""Domain errors. Entry points map them to transport status codes in exactly one place each."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class DomainError(Exception):
    """Base of every error a use case may raise on purpose."""


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgument(DomainError):
    """The caller sent something malformed; nothing was changed."""

    def __init__(
        self, violations: Iterable[FieldViolation] | FieldViolation, message: str = "invalid argument"
    ):
        self.violations = [violations] if isinstance(violations, FieldViolation) else list(violations)
        self.message = message
        details = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"{message}: {details}" if details else message)

    @classmethod
    def of(cls, field: str, description: str) -> InvalidArgument:
        return cls(FieldViolation(field, description))


class RefusedByStore(InvalidArgument):
    """The store refused a value of this request (too long for its column, a character it cannot hold, a
    number out of range): well formed as far as the use case could tell, but nothing of it was written."""


class NotFound(DomainError):
    """The thing does not exist, or belongs to another organization (callers cannot tell which)."""


class PermissionDenied(DomainError):
    """The caller is known but may not do this (e.g. hand out a role above its own)."""


class AlreadyExists(DomainError):
    """A unique thing was created twice."""


class FailedPrecondition(DomainError):
    """The request is well formed but the current state does not allow it."""


class Unavailable(DomainError):
    """Something the call depends on outside this service (a provider) did not answer; try again later."""


class InvariantViolated(DomainError):
    """An aggregate refused a transition that would break one of its rules (a bug in the caller)."""


class Violations:
    """Collects field violations so a command reports every problem at once, not the first one."""

    def __init__(self) -> None:
        self._items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self._items.append(FieldViolation(field, description))

    def check(self, condition: bool, field: str, description: str) -> None:
        if not condition:
            self.add(field, description)

    def raise_if_any(self) -> None:
        if self._items:
            raise InvalidArgument(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)
