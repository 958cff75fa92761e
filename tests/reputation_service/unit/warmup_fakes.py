"""Hand-written fakes of the warm-up planner's ports."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

from reputation_service.application.warmup_ports import GateAnswer, GateOutcome
from reputation_service.domain.instance import Instance
from reputation_service.domain.warmup import WarmupPhase
from reputation_service.domain.warmup_plan import MessageStatus, PlannedMessage, WarmupPlan, WarmupSchedule


class FakeWarmupStore:
    def __init__(self) -> None:
        self.settings: dict[str, WarmupSchedule] = {}
        self.plans: dict[tuple[str, date], WarmupPlan] = {}
        self.messages: dict[str, PlannedMessage] = {}
        self.leases: dict[str, datetime] = {}
        self.touched: dict[str, datetime] = {}

    async def get_settings(self, organization_id: str) -> WarmupSchedule | None:
        return self.settings.get(organization_id)

    async def put_settings(self, organization_id: str, schedule: WarmupSchedule, now: datetime) -> None:
        self.settings[organization_id] = schedule

    async def has_plan(self, instance_id: str, day: date) -> bool:
        return (instance_id, day) in self.plans

    async def get_plan(self, instance_id: str, day: date) -> WarmupPlan | None:
        plan = self.plans.get((instance_id, day))
        if plan is None:
            return None
        return replace(plan, messages=tuple(self.messages[m.idempotency_key] for m in plan.messages))

    async def add_plan(self, plan: WarmupPlan, now: datetime) -> bool:
        if (plan.instance_id, plan.day) in self.plans:
            return False
        self.plans[(plan.instance_id, plan.day)] = replace(plan, created_at=now)
        for message in plan.messages:
            self.messages[message.idempotency_key] = message
            self.touched[message.idempotency_key] = now
        return True

    async def claim_due(self, now: datetime, *, limit: int, lease: timedelta) -> list[PlannedMessage]:
        due = sorted(
            (
                m
                for m in self.messages.values()
                if m.status is MessageStatus.PLANNED
                and m.due_at <= now
                and self.leases.get(m.idempotency_key, now) <= now
            ),
            key=lambda m: m.due_at,
        )[:limit]
        for message in due:
            self.leases[message.idempotency_key] = now + lease
        return due

    async def record(
        self,
        key: str,
        *,
        status: MessageStatus,
        now: datetime,
        intent_id: str = "",
        gate_instance_id: str = "",
        reason: str = "",
        retry_at: datetime | None = None,
    ) -> None:
        message = self.messages[key]
        self.messages[key] = replace(
            message,
            status=status,
            intent_id=intent_id or message.intent_id,
            gate_instance_id=gate_instance_id or message.gate_instance_id,
            reason=reason,
            submitted_at=message.submitted_at or (now if intent_id else None),
        )
        if retry_at is not None:
            self.leases[key] = retry_at
        else:
            self.leases.pop(key, None)
        self.touched[key] = now

    async def awaiting_outcome(
        self, now: datetime, *, older_than: timedelta, limit: int
    ) -> list[PlannedMessage]:
        waiting = [
            m
            for m in self.messages.values()
            if m.status is MessageStatus.SUBMITTED and self.touched[m.idempotency_key] <= now - older_than
        ]
        return sorted(waiting, key=lambda m: self.touched[m.idempotency_key])[:limit]


class FakeWarmupGate:
    """Answers each submit with the next scripted answer (ACCEPTED by default) and remembers every call."""

    def __init__(self) -> None:
        self.submitted: list[PlannedMessage] = []
        self.answers: list[GateAnswer] = []
        self.outcomes: dict[str, GateAnswer] = {}

    async def submit(self, message: PlannedMessage) -> GateAnswer:
        self.submitted.append(message)
        if self.answers:
            return self.answers.pop(0)
        return GateAnswer(
            outcome=GateOutcome.ACCEPTED,
            intent_id=f"intent-{len(self.submitted)}",
            instance_id=message.sender_instance_id,
        )

    async def outcome(self, message: PlannedMessage) -> GateAnswer:
        return self.outcomes.get(message.intent_id, GateAnswer(outcome=GateOutcome.ACCEPTED))


class FakePhaseSource:
    def __init__(self, phases: dict[str, WarmupPhase] | None = None) -> None:
        self.phases = phases or {}

    async def phase_of(self, instance: Instance, now: datetime) -> WarmupPhase:
        return self.phases.get(instance.id, WarmupPhase.NEWBORN)
