"""How a send can go wrong, in the executor's own words: the classification decides the next status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ErrorClass(StrEnum):
    """What may be done after a failed attempt (values match whatlead.executor.v1.ErrorClass)."""

    TRANSIENT = "TRANSIENT"  # retry with backoff, up to the policy's maximum
    PERMANENT = "PERMANENT"  # never retry this message
    RESTRICTED = "RESTRICTED"  # never retry on this instance; Reputation cools it down
    AMBIGUOUS = "AMBIGUOUS"  # the request may have left: reconcile, never blindly re-send
    EXPIRED = "EXPIRED"  # the intent's validity ended before it could be sent


class RestrictionKind(StrEnum):
    """Why an instance cannot send (values match whatlead.common.v1.RestrictionKind)."""

    REACHOUT_TIMELOCK = "REACHOUT_TIMELOCK"  # WhatsApp error 463
    TEMPORARY_BAN = "TEMPORARY_BAN"
    PERMANENT_BAN = "PERMANENT_BAN"
    LOGGED_OUT = "LOGGED_OUT"
    DISCONNECTED = "DISCONNECTED"
    UNAUTHORIZED = "UNAUTHORIZED"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobError:
    """A classified failure. `code` is a short stable token ("reachout_timelock", "http_429"); `message` a
    short hint. Neither ever holds secrets or message bodies."""

    error_class: ErrorClass
    code: str
    message: str = ""
    restriction: RestrictionKind | None = None
    occurred_at: datetime
    retry_after_seconds: float | None = None  # the provider's Retry-After, when it sent one

    def __post_init__(self) -> None:
        if (self.error_class is ErrorClass.RESTRICTED) != (self.restriction is not None):
            raise ValueError("a restriction goes with RESTRICTED, and only with it")


class SendFailed(Exception):
    """Raised by the MessageSender port: the attempt failed, and `error` says how."""

    def __init__(self, error: JobError) -> None:
        self.error = error
        super().__init__(f"{error.error_class} {error.code}")
