"""Window statistics: what one instance did over the last hour, day and week, as counts.

The evaluation reads only these snapshots, never the signal log: how they are counted (time-bucketed
counters, pruned raw log) is the ingestion's business. The three windows are nested and all end at the
evaluation's `now`, so the last hour counts in all three: that nesting is how recent evidence weighs more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from libs.seedwork.errors import InvariantViolated


class Window(StrEnum):
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"


WINDOW_LENGTH: dict[Window, timedelta] = {
    Window.HOUR: timedelta(hours=1),
    Window.DAY: timedelta(days=1),
    Window.WEEK: timedelta(days=7),
}

_COUNTS = (
    "sent",
    "delivered",
    "read",
    "replied",
    "received",
    "failed",
    "ack_timeouts",
    "disconnects",
    "connection_errors",
    "timelocks",
    "bans",
)


def _ratio(numerator: int, denominator: int) -> float:
    # An ack can land in a later window than its send, so a count may outgrow its denominator: cap at 1.
    if denominator <= 0:
        return 0.0
    return min(1.0, numerator / denominator)


@dataclass(frozen=True, kw_only=True)
class WindowStats:
    """Signals of one instance over one window ending now.

    sent: server-acknowledged sends (MESSAGE_SENT); failed: sends that failed at send time; ack_timeouts:
    sends whose delivery ack never came within the ingestion's timeout (soft failures); disconnects and
    connection_errors: connection events; timelocks: 463 reach-out time-locks; bans: temporary or permanent
    bans. Ack latency is sent -> delivered, None when no delivery in the window had a known latency.
    """

    window: Window
    sent: int = 0
    delivered: int = 0
    read: int = 0
    replied: int = 0
    received: int = 0  # incoming messages that are not replies
    failed: int = 0
    ack_timeouts: int = 0
    disconnects: int = 0
    connection_errors: int = 0
    timelocks: int = 0
    bans: int = 0
    ack_latency_p50_ms: float | None = None
    ack_latency_p95_ms: float | None = None

    def __post_init__(self) -> None:
        negative = [name for name in _COUNTS if getattr(self, name) < 0]
        for name in ("ack_latency_p50_ms", "ack_latency_p95_ms"):
            value = getattr(self, name)
            if value is not None and value < 0:
                negative.append(name)
        if negative:
            raise InvariantViolated(f"window counts cannot be negative: {', '.join(negative)}")

    @classmethod
    def empty(cls, window: Window) -> WindowStats:
        return cls(window=window)

    @property
    def attempts(self) -> int:
        """Sends that reached the provider: acknowledged or refused."""
        return self.sent + self.failed

    @property
    def connection_events(self) -> int:
        return self.disconnects + self.connection_errors

    @property
    def restrictions(self) -> int:
        return self.timelocks + self.bans

    @property
    def delivery_ratio(self) -> float:
        """delivered / sent; 0 when nothing was sent."""
        return _ratio(self.delivered, self.sent)

    @property
    def read_ratio(self) -> float:
        """read / delivered; 0 when nothing was delivered."""
        return _ratio(self.read, self.delivered)

    @property
    def reply_ratio(self) -> float:
        """replied / delivered; 0 when nothing was delivered."""
        return _ratio(self.replied, self.delivered)

    @property
    def engagement_ratio(self) -> float:
        """The better of the read and reply ratios: many people turn read receipts off, and a reply is
        engagement whether or not its read was reported."""
        return max(self.read_ratio, self.reply_ratio)

    @property
    def failure_ratio(self) -> float:
        """failed / (sent + failed); 0 when nothing was attempted."""
        return _ratio(self.failed, self.attempts)

    @property
    def ack_timeout_ratio(self) -> float:
        """ack_timeouts / sent; 0 when nothing was sent."""
        return _ratio(self.ack_timeouts, self.sent)

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _COUNTS}


@dataclass(frozen=True, kw_only=True)
class WindowSet:
    """The three windows one evaluation reads, all ending at the same moment."""

    hour: WindowStats
    day: WindowStats
    week: WindowStats

    def __post_init__(self) -> None:
        for name in ("hour", "day", "week"):
            if getattr(self, name).window is not Window(name.upper()):
                raise InvariantViolated(f"WindowSet.{name} holds the {getattr(self, name).window} window")

    @classmethod
    def empty(cls) -> WindowSet:
        return cls(
            hour=WindowStats.empty(Window.HOUR),
            day=WindowStats.empty(Window.DAY),
            week=WindowStats.empty(Window.WEEK),
        )

    def of(self, window: Window) -> WindowStats:
        if window is Window.HOUR:
            return self.hour
        if window is Window.DAY:
            return self.day
        return self.week
