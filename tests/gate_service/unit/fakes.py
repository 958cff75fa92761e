"""Hand-written fakes of the Gate's ports, with the semantics of the real adapters."""

from __future__ import annotations

import builtins
import copy
from collections.abc import Sequence
from datetime import datetime

from gate_service.domain.decision import DecisionReason
from gate_service.domain.intent import IntentStatus, MessageIntent
from gate_service.domain.ports import IntentFilter
from gate_service.domain.projection import InstanceState, Plan
from gate_service.domain.rates import (
    InstanceUsage,
    RateSnapshot,
    Reservation,
    ReservationResult,
    SentWindows,
    next_day,
    next_hour,
    next_minute,
    next_month,
    window_keys,
)
from libs.seedwork.controls import ControlKey, ExecutionControl
from libs.seedwork.errors import AlreadyExists
from libs.testing.fakes import FakeUnitOfWork


class FakeIntentRepository:
    def __init__(self) -> None:
        self.rows: dict[str, MessageIntent] = {}
        self._new: list[MessageIntent] = []
        self.reads_of_many = 0  # calls of get_many: a batch of reports is read once

    def add(self, intent: MessageIntent) -> None:
        self._new.append(intent)

    def flush(self) -> None:
        for intent in self._new:
            if intent.idempotency_key and any(
                (i.organization_id, i.idempotency_key) == (intent.organization_id, intent.idempotency_key)
                for i in self.rows.values()
            ):
                self._new = []
                raise AlreadyExists("unique (organization, idempotency key)")
            self.rows[intent.id] = intent
        self._new = []

    async def get(self, organization_id: str, intent_id: str) -> MessageIntent | None:
        found = self.rows.get(intent_id)
        return found if found is not None and found.organization_id == organization_id else None

    async def get_many(self, keys: Sequence[tuple[str, str]]) -> builtins.list[MessageIntent]:
        self.reads_of_many += 1
        found = (self.rows.get(intent_id) for _, intent_id in set(keys))
        return [i for i in found if i is not None and (i.organization_id, i.id) in keys]

    async def find_by_key(self, organization_id: str, key: str) -> MessageIntent | None:
        return next(
            (
                i
                for i in self.rows.values()
                if (i.organization_id, i.idempotency_key) == (organization_id, key)
            ),
            None,
        )

    async def list(
        self, organization_id: str, *, after_id: str | None, limit: int, where: IntentFilter
    ) -> list[MessageIntent]:
        chosen = sorted(
            (
                i
                for i in self.rows.values()
                if i.organization_id == organization_id
                and (after_id is None or i.id > after_id)
                and (where.status is None or i.status is where.status)
                and (where.purpose is None or i.purpose is where.purpose)
                and (where.instance_id is None or i.decided_by_instance_id == where.instance_id)
                and (where.target is None or i.target.value == where.target)
                and (where.campaign_id is None or i.campaign_id == where.campaign_id)
                and (where.created_after is None or i.created_at >= where.created_after)
                and (where.created_before is None or i.created_at < where.created_before)
            ),
            key=lambda i: i.id,
        )
        return chosen[:limit]

    async def claim_due(self, now: datetime, limit: int) -> builtins.list[MessageIntent]:
        due = [
            i
            for i in self.rows.values()
            if i.status is IntentStatus.QUEUED and i.queued_until and i.queued_until <= now
        ]
        return sorted(due, key=lambda i: i.queued_until or now)[:limit]

    async def claim_awaiting_instance(self, organization_id: str, limit: int) -> builtins.list[MessageIntent]:
        waiting = [
            i
            for i in self.rows.values()
            if i.organization_id == organization_id
            and i.status is IntentStatus.QUEUED
            and i.status_reason is DecisionReason.NO_ELIGIBLE_INSTANCE
        ]
        return sorted(waiting, key=lambda i: i.id)[:limit]


class FakeProjectionStore:
    def __init__(self) -> None:
        self.instances: dict[str, InstanceState] = {}
        self.controls: dict[ControlKey, ExecutionControl] = {}
        self.plans: dict[str, Plan] = {}

    async def load_instance(self, instance_id: str) -> InstanceState | None:
        return self.instances.get(instance_id)

    async def save_instance(self, state: InstanceState, changed_at: datetime) -> None:
        self.instances[state.instance_id] = state

    async def save_control(self, control: ExecutionControl, changed_at: datetime) -> None:
        if control.supersedes(self.controls.get(control.key)):
            self.controls[control.key] = control

    async def save_plan(self, plan: Plan, changed_at: datetime) -> None:
        self.plans[plan.organization_id] = plan


class FakeGateUnitOfWork(FakeUnitOfWork):
    """Shared by every `uow()` call of a test, like one database."""

    def __init__(self) -> None:
        super().__init__()
        self.intents = FakeIntentRepository()
        self.projections = FakeProjectionStore()
        self._committed: dict[str, MessageIntent] = {}

    def _begin(self) -> None:
        self.intents.rows = copy.deepcopy(self._committed)

    def _keep(self) -> None:
        self._committed = copy.deepcopy(self.intents.rows)

    def _discard(self) -> None:
        self.intents.rows = copy.deepcopy(self._committed)
        self.intents._new = []

    async def commit(self) -> None:
        self.intents.flush()
        await super().commit()


class FakeRateStore:
    """RateStore in dictionaries. Check-and-take runs with no await in between, so it is atomic like the
    Redis script; tests/gate_service/test_rate_scenarios.py holds both to the same scenarios."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, ...], int] = {}
        self.last: dict[tuple[str, ...], datetime] = {}
        self.sticky: dict[tuple[str, str], str] = {}

    @staticmethod
    def _counters(r: Reservation) -> list[tuple[str, ...]]:
        m, h, d, month = window_keys(r.now)
        org, target, inst = r.organization_id, r.target, r.instance_id
        return [
            ("org", org, "d", d),
            ("org", org, "M", month),
            ("contact", org, target, "h", h),
            ("instance", inst, "d", d),
            ("instance", inst, "h", h),
            ("instance", inst, "m", m),
        ]

    def _usage(self, instance_id: str, m: str, h: str, d: str) -> InstanceUsage:
        return InstanceUsage(
            minute=self.counts.get(("instance", instance_id, "m", m), 0),
            hour=self.counts.get(("instance", instance_id, "h", h), 0),
            day=self.counts.get(("instance", instance_id, "d", d), 0),
            last_sent_at=self.last.get(("instance", instance_id)),
        )

    async def snapshot(
        self, organization_id: str, target: str, instance_ids: list[str], now: datetime
    ) -> RateSnapshot:
        m, h, d, month = window_keys(now)
        sticky = self.sticky.get((organization_id, target))
        ids = [*instance_ids, sticky] if sticky and sticky not in instance_ids else instance_ids
        return RateSnapshot(
            sticky_instance_id=sticky,
            contact_last_sent_at=self.last.get(("contact", organization_id, target)),
            contact_hour=self.counts.get(("contact", organization_id, target, "h", h), 0),
            org_day=self.counts.get(("org", organization_id, "d", d), 0),
            org_month=self.counts.get(("org", organization_id, "M", month), 0),
            instances={i: self._usage(i, m, h, d) for i in ids},
        )

    async def reserve(self, r: Reservation) -> ReservationResult:
        now = r.now
        org_day, org_month, contact_hour, day, hour, minute = (
            self.counts.get(k, 0) for k in self._counters(r)
        )
        if r.plan_daily_cap and org_day >= r.plan_daily_cap:
            return ReservationResult(False, DecisionReason.PLAN_LIMIT, next_day(now))
        if r.plan_monthly_cap and org_month >= r.plan_monthly_cap:
            return ReservationResult(False, DecisionReason.PLAN_LIMIT, next_month(now))
        contact_last = self.last.get(("contact", r.organization_id, r.target))
        if contact_last is not None and r.contact_min_gap and now < contact_last + r.contact_min_gap:
            return ReservationResult(
                False, DecisionReason.CONTACT_MIN_INTERVAL, contact_last + r.contact_min_gap
            )
        if r.contact_per_hour and contact_hour >= r.contact_per_hour:
            return ReservationResult(False, DecisionReason.CONTACT_RATE_LIMIT, next_hour(now))
        last = self.last.get(("instance", r.instance_id))
        if last is not None and r.caps.min_interval and now < last + r.caps.min_interval:
            return ReservationResult(False, DecisionReason.MIN_INTERVAL, last + r.caps.min_interval)
        for used, cap, end in (
            (day, r.caps.per_day, next_day),
            (hour, r.caps.per_hour, next_hour),
            (minute, r.caps.per_minute, next_minute),
        ):
            if cap and used >= cap:
                return ReservationResult(False, DecisionReason.RATE_LIMIT, end(now))
        for key in self._counters(r):
            self.counts[key] = self.counts.get(key, 0) + 1
        self.last[("contact", r.organization_id, r.target)] = now
        self.last[("instance", r.instance_id)] = now
        self.sticky[(r.organization_id, r.target)] = r.instance_id
        return ReservationResult(True)

    async def release(self, r: Reservation) -> None:
        for key in self._counters(r):
            if self.counts.get(key, 0) > 0:
                self.counts[key] -= 1


class FakeSentHistory:
    """SentHistory that answers the windows it is given, counting the reads (one rebuild, one read)."""

    def __init__(self, windows: SentWindows) -> None:
        self.windows = windows
        self.reads = 0

    async def current_windows(self) -> SentWindows:
        self.reads += 1
        return self.windows


class FakeRecentIntentKeys:
    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], str] = {}

    def intent_id(self, organization_id: str, idempotency_key: str) -> str | None:
        return self.keys.get((organization_id, idempotency_key))

    def remember(self, organization_id: str, idempotency_key: str, intent_id: str) -> None:
        self.keys[(organization_id, idempotency_key)] = intent_id


class FakeInstanceArrivals:
    def __init__(self) -> None:
        self.organizations: list[str] = []

    def arrived(self, organization_id: str) -> None:
        self.organizations.append(organization_id)
