"""The in-process rate store (embedded default, single Gate replica): same semantics as the Redis one.

Atomic without locks: check-and-take runs with no await in between, and the event loop runs one
coroutine at a time.
"""

from __future__ import annotations

from datetime import datetime

from gate_service.domain.decision import DecisionReason
from gate_service.domain.rates import (
    InstanceUsage,
    RateSnapshot,
    Reservation,
    ReservationResult,
    next_day,
    next_hour,
    next_minute,
    next_month,
    window_keys,
)


class InMemoryRateStore:
    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._last: dict[str, datetime] = {}
        self._sticky: dict[tuple[str, str], str] = {}
        self._window = ""

    def _expire(self, now: datetime) -> None:
        # Counters of past windows are dropped when the day changes, so memory stays bounded (the month's
        # plan counters are kept).
        _, _, day, month = window_keys(now)
        if day != self._window:
            self._window = day
            self._counts = {k: v for k, v in self._counts.items() if k.endswith(f":M:{month}")}

    def _usage(self, instance_id: str, m: str, h: str, d: str) -> InstanceUsage:
        return InstanceUsage(
            minute=self._counts.get(f"i:{instance_id}:m:{m}", 0),
            hour=self._counts.get(f"i:{instance_id}:h:{h}", 0),
            day=self._counts.get(f"i:{instance_id}:d:{d}", 0),
            last_sent_at=self._last.get(f"i:{instance_id}"),
        )

    async def snapshot(
        self, organization_id: str, target: str, instance_ids: list[str], now: datetime
    ) -> RateSnapshot:
        self._expire(now)
        m, h, d, month = window_keys(now)
        sticky = self._sticky.get((organization_id, target))
        ids = [*instance_ids, sticky] if sticky and sticky not in instance_ids else instance_ids
        return RateSnapshot(
            sticky_instance_id=sticky,
            contact_last_sent_at=self._last.get(f"c:{organization_id}:{target}"),
            contact_hour=self._counts.get(f"c:{organization_id}:{target}:h:{h}", 0),
            org_day=self._counts.get(f"o:{organization_id}:d:{d}", 0),
            org_month=self._counts.get(f"o:{organization_id}:M:{month}", 0),
            instances={i: self._usage(i, m, h, d) for i in ids},
        )

    async def reserve(self, r: Reservation) -> ReservationResult:
        now = r.now
        self._expire(now)
        m, h, d, month = window_keys(now)
        org, contact, inst = (
            f"o:{r.organization_id}",
            f"c:{r.organization_id}:{r.target}",
            f"i:{r.instance_id}",
        )
        counts = self._counts
        if r.plan_daily_cap and counts.get(f"{org}:d:{d}", 0) >= r.plan_daily_cap:
            return ReservationResult(False, DecisionReason.PLAN_LIMIT, next_day(now))
        if r.plan_monthly_cap and counts.get(f"{org}:M:{month}", 0) >= r.plan_monthly_cap:
            return ReservationResult(False, DecisionReason.PLAN_LIMIT, next_month(now))
        last_contact = self._last.get(contact)
        if last_contact is not None and r.contact_min_gap and now < last_contact + r.contact_min_gap:
            return ReservationResult(
                False, DecisionReason.CONTACT_MIN_INTERVAL, last_contact + r.contact_min_gap
            )
        if r.contact_per_hour and counts.get(f"{contact}:h:{h}", 0) >= r.contact_per_hour:
            return ReservationResult(False, DecisionReason.CONTACT_RATE_LIMIT, next_hour(now))
        last = self._last.get(inst)
        if last is not None and r.caps.min_interval and now < last + r.caps.min_interval:
            return ReservationResult(False, DecisionReason.MIN_INTERVAL, last + r.caps.min_interval)
        for key, cap, end in (
            (f"{inst}:d:{d}", r.caps.per_day, next_day),
            (f"{inst}:h:{h}", r.caps.per_hour, next_hour),
            (f"{inst}:m:{m}", r.caps.per_minute, next_minute),
        ):
            if cap and counts.get(key, 0) >= cap:
                return ReservationResult(False, DecisionReason.RATE_LIMIT, end(now))
        for key in (
            f"{org}:d:{d}",
            f"{org}:M:{month}",
            f"{contact}:h:{h}",
            f"{inst}:d:{d}",
            f"{inst}:h:{h}",
            f"{inst}:m:{m}",
        ):
            counts[key] = counts.get(key, 0) + 1
        self._last[contact] = now
        self._last[inst] = now
        self._sticky[(r.organization_id, r.target)] = r.instance_id
        return ReservationResult(True)

    async def release(self, r: Reservation) -> None:
        m, h, d, month = window_keys(r.now)
        org, contact, inst = (
            f"o:{r.organization_id}",
            f"c:{r.organization_id}:{r.target}",
            f"i:{r.instance_id}",
        )
        for key in (
            f"{org}:d:{d}",
            f"{org}:M:{month}",
            f"{contact}:h:{h}",
            f"{inst}:d:{d}",
            f"{inst}:h:{h}",
            f"{inst}:m:{m}",
        ):
            if self._counts.get(key, 0) > 0:
                self._counts[key] -= 1
