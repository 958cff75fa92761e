"""What the rate windows say at decision time, and what a reservation asks for (values, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gate_service.domain.decision import DecisionReason
from gate_service.domain.policies import RateCaps


@dataclass(frozen=True)
class InstanceUsage:
    """Sends counted in the instance's current minute, hour and day windows, and its last send."""

    minute: int = 0
    hour: int = 0
    day: int = 0
    last_sent_at: datetime | None = None


@dataclass(frozen=True)
class RateSnapshot:
    sticky_instance_id: str | None = None
    contact_last_sent_at: datetime | None = None
    contact_hour: int = 0
    org_day: int = 0
    org_month: int = 0
    instances: dict[str, InstanceUsage] = field(default_factory=dict)

    def usage(self, instance_id: str) -> InstanceUsage:
        return self.instances.get(instance_id, _NO_USAGE)


_NO_USAGE = InstanceUsage()


@dataclass(frozen=True)
class ContactUsage:
    """Sends to one contact of an organization in the current hour, the last of them and its instance."""

    hour: int = 0
    last_sent_at: datetime | None = None
    last_instance_id: str | None = None


@dataclass(frozen=True)
class PlanUsage:
    """Sends of one organization in the current day and month."""

    day: int = 0
    month: int = 0


@dataclass(frozen=True)
class SentWindows:
    """The windows current at `at` as the Gate's own approved (and later) intents count them, by decision
    time: what the rate windows are rebuilt from when their store lost them."""

    at: datetime
    instances: dict[str, InstanceUsage] = field(default_factory=dict)
    contacts: dict[tuple[str, str], ContactUsage] = field(default_factory=dict)  # (organization, target)
    plans: dict[str, PlanUsage] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Reservation:
    """Take one send slot on an instance, for a target, within the organization's plan, atomically: either
    every window has room (and all are counted) or nothing changes."""

    organization_id: str
    target: str
    instance_id: str
    now: datetime
    caps: RateCaps
    contact_min_gap: timedelta
    contact_per_hour: int
    plan_daily_cap: int
    plan_monthly_cap: int


@dataclass(frozen=True)
class ReservationResult:
    ok: bool
    reason: DecisionReason | None = None
    retry_at: datetime | None = None

    @property
    def concerns_every_candidate(self) -> bool:
        """Refused by the plan or the contact's protection: no other instance would be let through."""
        return self.reason in _EVERY_CANDIDATE


_EVERY_CANDIDATE = frozenset(
    {DecisionReason.PLAN_LIMIT, DecisionReason.CONTACT_MIN_INTERVAL, DecisionReason.CONTACT_RATE_LIMIT}
)


# --- fixed UTC windows ------------------------------------------------------------------------------


def minute_start(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def hour_start(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def next_minute(now: datetime) -> datetime:
    return minute_start(now) + timedelta(minutes=1)


def next_hour(now: datetime) -> datetime:
    return hour_start(now) + timedelta(hours=1)


def next_day(now: datetime) -> datetime:
    return day_start(now) + timedelta(days=1)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def window_keys(now: datetime) -> tuple[str, str, str, str]:
    """Identifiers of the current minute, hour, day and month windows (UTC): minutes, hours and days since
    the epoch, and year*12+month."""
    seconds = int(now.timestamp())
    utc = now.astimezone(UTC)
    return (
        str(seconds // 60),
        str(seconds // 3600),
        str(seconds // 86400),
        str(utc.year * 12 + utc.month - 1),
    )


def refusal_time(
    reason: DecisionReason,
    now: datetime,
    *,
    window: str = "",
    last: datetime | None = None,
    gap: timedelta | None = None,
) -> datetime | None:
    """When a refusal of the rate windows stops applying."""
    if reason in (DecisionReason.MIN_INTERVAL, DecisionReason.CONTACT_MIN_INTERVAL) and last and gap:
        return last + gap
    if window == "minute":
        return next_minute(now)
    if window == "hour":
        return next_hour(now)
    if window == "day":
        return next_day(now)
    if window == "month":
        return next_month(now)
    return None
