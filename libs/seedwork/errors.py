"""Domain errors. Entry points map them to transport status codes in exactly one place each.

Every error carries a `reason`: a stable name a client program can branch on (google.rpc.ErrorInfo, AIP-193),
listed in docs/contracts.md, with `metadata` naming the things it is about. The message is for people."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import ClassVar


class Reason(StrEnum):
    """Every reason an error of ours may carry. Once published a reason is never renamed nor reused for
    something else: clients branch on it. docs/contracts.md lists them (a test keeps both equal)."""

    # Each class's default, for the raises that need nothing more specific.
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    INVARIANT_VIOLATED = "INVARIANT_VIOLATED"
    UNAVAILABLE = "UNAVAILABLE"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    # The request itself.
    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    VALUE_REFUSED_BY_STORE = "VALUE_REFUSED_BY_STORE"
    # Who calls.
    FOREIGN_ORGANIZATION = "FOREIGN_ORGANIZATION"
    ROLE_ABOVE_CALLER = "ROLE_ABOVE_CALLER"
    # Things that are not there (or belong to another organization).
    INTENT_NOT_FOUND = "INTENT_NOT_FOUND"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    INSTANCE_NOT_FOUND = "INSTANCE_NOT_FOUND"
    ORGANIZATION_NOT_FOUND = "ORGANIZATION_NOT_FOUND"
    API_KEY_NOT_FOUND = "API_KEY_NOT_FOUND"
    # Things that are there already.
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    MEMBER_ALREADY_EXISTS = "MEMBER_ALREADY_EXISTS"
    PROVIDER_REF_IN_USE = "PROVIDER_REF_IN_USE"
    CONCURRENT_WRITE = "CONCURRENT_WRITE"
    # States that do not allow the request.
    CONCURRENT_MODIFICATION = "CONCURRENT_MODIFICATION"
    INTENT_EXPIRED = "INTENT_EXPIRED"
    INTENT_QUEUED = "INTENT_QUEUED"
    INTENT_ALREADY_DECIDED = "INTENT_ALREADY_DECIDED"
    JOB_NOT_RETRYABLE = "JOB_NOT_RETRYABLE"
    INSTANCE_LIMIT_REACHED = "INSTANCE_LIMIT_REACHED"
    PROVIDER_NOT_CONFIGURED = "PROVIDER_NOT_CONFIGURED"
    GATEWAY_NOT_CONFIGURED = "GATEWAY_NOT_CONFIGURED"
    PAIRING_PHONE_UNSUPPORTED = "PAIRING_PHONE_UNSUPPORTED"
    PROVIDER_SESSION_MISSING = "PROVIDER_SESSION_MISSING"
    PROVIDER_REFUSED = "PROVIDER_REFUSED"
    # Streams.
    WATCHER_TOO_SLOW = "WATCHER_TOO_SLOW"
    POSITION_EXPIRED = "POSITION_EXPIRED"
    # Outside the use cases.
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"


class DomainError(Exception):
    """Base of every error a use case may raise on purpose.

    `reason`: what a client program branches on (the class's default when not given). `metadata`: the
    things the error is about, by name (an id, a field, a position), so that no client parses the message.
    `retry_delay`: how long to wait before trying again, for an error that retrying cures."""

    default_reason: ClassVar[Reason] = Reason.INTERNAL
    default_retry_delay: ClassVar[timedelta | None] = None

    def __init__(
        self,
        message: str = "",
        *,
        reason: Reason | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_delay: timedelta | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})
        self.retry_delay = retry_delay or self.default_retry_delay


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgument(DomainError):
    """The caller sent something malformed; nothing was changed."""

    default_reason = Reason.INVALID_ARGUMENT

    def __init__(
        self,
        violations: Iterable[FieldViolation] | FieldViolation,
        message: str = "invalid argument",
        *,
        reason: Reason | None = None,
        metadata: Mapping[str, str] | None = None,
    ):
        self.violations = [violations] if isinstance(violations, FieldViolation) else list(violations)
        self.message = message
        details = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"{message}: {details}" if details else message, reason=reason, metadata=metadata)

    @classmethod
    def of(cls, field: str, description: str) -> InvalidArgument:
        return cls(FieldViolation(field, description))


class RefusedByStore(InvalidArgument):
    """The store refused a value of this request (too long for its column, a character it cannot hold, a
    number out of range): well formed as far as the use case could tell, but nothing of it was written."""

    default_reason = Reason.VALUE_REFUSED_BY_STORE


class NotFound(DomainError):
    """The thing does not exist, or belongs to another organization (callers cannot tell which)."""

    default_reason = Reason.NOT_FOUND


class Unauthenticated(DomainError):
    """Nobody we know calls: no credential, or one that is malformed, unknown, revoked or expired."""

    default_reason = Reason.UNAUTHENTICATED


class PermissionDenied(DomainError):
    """The caller is known but may not do this (e.g. hand out a role above its own)."""

    default_reason = Reason.PERMISSION_DENIED


class AlreadyExists(DomainError):
    """A unique thing was created twice."""

    default_reason = Reason.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    """The request is well formed but the current state does not allow it."""

    default_reason = Reason.FAILED_PRECONDITION


class OutOfRange(DomainError):
    """The request names a position or a range past what is kept or possible (a stream position expired)."""

    default_reason = Reason.OUT_OF_RANGE


class ResourceExhausted(DomainError):
    """The caller used up what is given to it (a stream it did not read fast enough); it may try again."""

    default_reason = Reason.RESOURCE_EXHAUSTED
    default_retry_delay = timedelta(seconds=1)


class Unavailable(DomainError):
    """Something the call depends on outside this service (a provider) did not answer; try again later."""

    default_reason = Reason.UNAVAILABLE
    default_retry_delay = timedelta(seconds=1)


class InvariantViolated(DomainError):
    """An aggregate refused a transition that would break one of its rules (a bug in the caller)."""

    default_reason = Reason.INVARIANT_VIOLATED


# --- messages that read as English ----------------------------------------------------------------------


def duration_text(duration: timedelta) -> str:
    """`72 hours`, `1 hour and 30 minutes`, `30 days`: a duration as a message says it (never Python's
    `3 days, 0:00:00`). Whole weeks and more in days, anything shorter in hours, minutes and seconds."""
    seconds = int(duration.total_seconds())
    if seconds <= 0:
        return "0 seconds"
    if seconds % 86_400 == 0 and seconds >= 7 * 86_400:
        return _count(seconds // 86_400, "day")
    parts = []
    for unit, size in (("hour", 3_600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            parts.append(_count(seconds // size, unit))
            seconds %= size
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def with_article(word: str) -> str:
    """`an AUDIO`, `a TEXT`: the indefinite article a word takes (by its first letter; our words are enum
    names and plain nouns, without the exceptions of spoken English)."""
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


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
