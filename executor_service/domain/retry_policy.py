"""Retry and pause timing as data: exponential backoff with jitter, a maximum, a pause re-check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Attempt n (1-based) that failed transiently waits base * factor**(n-1), capped at `max_delay`, then
    spread by +/- `jitter` (a fraction) so retries of a burst do not hit the provider together. A provider's
    Retry-After is a floor. After `max_attempts` attempts a transient failure is final.
    """

    max_attempts: int = 5
    base_delay: timedelta = timedelta(seconds=2)
    factor: float = 4.0
    max_delay: timedelta = timedelta(minutes=5)
    jitter: float = 0.2
    pause_recheck: timedelta = timedelta(minutes=1)  # a paused job looks again after at most this
    max_reconciliations: int = 10  # rescues of one job without an answer before an operator must look

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay <= timedelta(0) or self.max_delay < self.base_delay:
            raise ValueError("delays must be positive and max_delay >= base_delay")
        if self.factor < 1.0 or not 0.0 <= self.jitter < 1.0:
            raise ValueError("factor must be >= 1 and jitter in [0, 1)")
        if self.pause_recheck <= timedelta(0):
            raise ValueError("pause_recheck must be positive")

    def nominal_delay(self, attempt: int) -> timedelta:
        """The delay after failed attempt `attempt`, before jitter."""
        seconds = self.base_delay.total_seconds() * self.factor ** max(attempt - 1, 0)
        return min(timedelta(seconds=seconds), self.max_delay)

    def delay(
        self, attempt: int, *, random: Callable[[], float], retry_after_seconds: float | None = None
    ) -> timedelta:
        """The jittered delay; `random()` returns a float in [0, 1) (injected so tests are exact)."""
        nominal = self.nominal_delay(attempt).total_seconds()
        spread = nominal * (1.0 - self.jitter + 2.0 * self.jitter * random())
        floor = retry_after_seconds or 0.0
        return timedelta(seconds=max(spread, floor))

    def exhausted(self, attempts_in_round: int) -> bool:
        return attempts_in_round >= self.max_attempts

    def paused_until(self, now: datetime, pause_ends: datetime | None) -> datetime:
        """When a job held by the kill-switch looks again: the pause's end, but no later than a re-check."""
        recheck = now + self.pause_recheck
        return recheck if pause_ends is None else max(now, min(pause_ends, recheck))
