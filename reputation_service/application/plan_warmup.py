"""The warm-up planner's passes: make today's plan for each warming number, submit each planned message to
the Gate when its time comes, and learn what became of the submitted ones.

Only the Gate decides and only the Executor sends: a planned message is a `SubmitIntent` with purpose
WARMUP and the message's idempotency key, so a pass that crashes after the Gate took a message and before
we wrote it down submits it again as the same intent (the Gate replays its answer).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

from libs.seedwork.clock import Clock
from libs.seedwork.shared_kernel import ConnectionState, Purpose
from reputation_service.application.warmup_ports import (
    GateAnswer,
    GateOutcome,
    PhaseSource,
    WarmupGate,
    WarmupStore,
)
from reputation_service.domain.instance import Instance
from reputation_service.domain.ports import InstanceFilter, ReputationUnitOfWork
from reputation_service.domain.warmup import WarmupPhase
from reputation_service.domain.warmup_plan import (
    MessageStatus,
    Partner,
    PhaseRamp,
    WarmupSchedule,
    plan_day,
)

log = logging.getLogger(__name__)

WARMING_PHASES = frozenset({WarmupPhase.NEWBORN, WarmupPhase.WARMING})
PAGE = 500


@dataclass(frozen=True, kw_only=True)
class PlanningResult:
    plans: int = 0
    messages: int = 0  # planned to be submitted (the ones already past their time are skipped at once)
    skipped: int = 0


class PlanWarmupHandler:
    """Makes today's plan (in each organization's time zone) for every connected number in NEWBORN or
    WARMING that allows WARMUP, once: a plan kept for the day is never made again."""

    def __init__(
        self,
        uow: Callable[[], ReputationUnitOfWork],
        store: WarmupStore,
        phases: PhaseSource,
        clock: Clock,
        *,
        ramp: PhaseRamp | None = None,
    ) -> None:
        self._uow = uow
        self._store = store
        self._phases = phases
        self._clock = clock
        self._ramp = ramp or PhaseRamp()

    async def __call__(self) -> PlanningResult:
        now = self._clock.now()
        plans = messages = skipped = 0
        for organization_id, members in (await self._warmup_numbers()).items():
            schedule = await self._store.get_settings(organization_id) or WarmupSchedule()
            day = schedule.local_day(now)
            friendly = [Partner(phone=phone) for phone in schedule.friendly_numbers]
            own = [Partner(phone=i.phone, instance_id=i.id) for i in members]
            for instance in members:
                if await self._store.has_plan(instance.id, day):
                    continue
                phase = await self._phases.phase_of(instance, now)
                if phase not in WARMING_PHASES:
                    continue
                plan = plan_day(
                    organization_id=organization_id,
                    instance_id=instance.id,
                    instance_phone=instance.phone,
                    registered_at=instance.created_at,
                    day=day,
                    phase=phase,
                    partners=own + friendly,
                    schedule=schedule,
                    ramp=self._ramp,
                )
                # A plan made late in the day does not send its morning in a burst: what is already past
                # is skipped, and says why.
                late = [m for m in plan.messages if m.due_at < now]
                plan = replace(
                    plan,
                    messages=tuple(
                        replace(m, status=MessageStatus.SKIPPED, reason="due before the plan was made")
                        if m.due_at < now
                        else m
                        for m in plan.messages
                    ),
                )
                if await self._store.add_plan(plan, now):
                    plans += 1
                    messages += len(plan.messages) - len(late)
                    skipped += len(late)
        return PlanningResult(plans=plans, messages=messages, skipped=skipped)

    async def _warmup_numbers(self) -> dict[str, list[Instance]]:
        """Every organization's connected numbers that allow WARMUP: the ones to warm and their partners."""
        where = InstanceFilter(purpose=Purpose.WARMUP, connection_state=ConnectionState.CONNECTED)
        by_org: dict[str, list[Instance]] = {}
        after: str | None = None
        while True:
            async with self._uow() as uow:
                page = await uow.instances.list(None, after_id=after, limit=PAGE, where=where)
            for instance in page:
                by_org.setdefault(instance.organization_id, []).append(instance)
            if len(page) < PAGE:
                return by_org
            after = page[-1].id


@dataclass(frozen=True, kw_only=True)
class SubmissionResult:
    submitted: int = 0  # the Gate took them (approved or queued) or had already sent them
    refused: Counter[str] = field(default_factory=Counter)  # by the Gate's reason
    skipped: int = 0
    retry_later: int = 0


class SubmitDueWarmupHandler:
    """Submits the planned messages whose time has come, each through the Gate with its own idempotency
    key. A message more than `late_after` overdue is skipped rather than sent in a burst with others."""

    def __init__(
        self,
        store: WarmupStore,
        gate: WarmupGate,
        clock: Clock,
        *,
        batch_size: int = 50,
        lease: timedelta = timedelta(seconds=60),
        late_after: timedelta = timedelta(minutes=30),
        retry_after: timedelta = timedelta(seconds=30),
    ) -> None:
        self._store = store
        self._gate = gate
        self._clock = clock
        self._batch_size = batch_size
        self._lease = lease
        self._late_after = late_after
        self._retry_after = retry_after

    async def __call__(self) -> SubmissionResult:
        now = self._clock.now()
        due = await self._store.claim_due(now, limit=self._batch_size, lease=self._lease)
        submitted = skipped = retry = 0
        refused: Counter[str] = Counter()
        for message in due:
            now = self._clock.now()
            if now - message.due_at > self._late_after:
                late = int((now - message.due_at).total_seconds() // 60)
                await self._store.record(
                    message.idempotency_key,
                    status=MessageStatus.SKIPPED,
                    now=now,
                    reason=f"late: its time passed {late} min ago",
                )
                skipped += 1
                continue
            answer = await self._gate.submit(message)
            status = _status_after(answer)
            if status is None:
                await self._store.record(
                    message.idempotency_key,
                    status=MessageStatus.PLANNED,
                    now=now,
                    reason=answer.reason,
                    retry_at=now + self._retry_after,
                )
                retry += 1
                continue
            await self._store.record(
                message.idempotency_key,
                status=status,
                now=now,
                intent_id=answer.intent_id,
                gate_instance_id=answer.instance_id,
                reason=answer.reason if status is MessageStatus.FAILED else "",
            )
            if answer.outcome is GateOutcome.REFUSED:
                refused[answer.reason or "UNSPECIFIED"] += 1
            elif status is not MessageStatus.FAILED:
                submitted += 1
        return SubmissionResult(submitted=submitted, refused=refused, skipped=skipped, retry_later=retry)


@dataclass(frozen=True, kw_only=True)
class TrackingResult:
    sent: int = 0
    failed: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # blocked or dropped after being queued


class TrackSubmittedWarmupHandler:
    """Asks the Gate what became of submitted messages (sent, failed, blocked after a queue), so a plan's
    progress is its real outcome. Each message is looked at again at most every `recheck`."""

    def __init__(
        self,
        store: WarmupStore,
        gate: WarmupGate,
        clock: Clock,
        *,
        batch_size: int = 50,
        recheck: timedelta = timedelta(seconds=30),
    ) -> None:
        self._store = store
        self._gate = gate
        self._clock = clock
        self._batch_size = batch_size
        self._recheck = recheck

    async def __call__(self) -> TrackingResult:
        now = self._clock.now()
        waiting = await self._store.awaiting_outcome(now, older_than=self._recheck, limit=self._batch_size)
        sent = failed = 0
        refused: Counter[str] = Counter()
        for message in waiting:
            answer = await self._gate.outcome(message)
            status = _status_after(answer) or MessageStatus.SUBMITTED
            await self._store.record(
                message.idempotency_key,
                status=status,
                now=self._clock.now(),
                intent_id=message.intent_id,
                gate_instance_id=answer.instance_id or message.gate_instance_id,
                reason=answer.reason if status is MessageStatus.FAILED else "",
            )
            if status is MessageStatus.SENT:
                sent += 1
            elif answer.outcome is GateOutcome.REFUSED:
                refused[answer.reason or "UNSPECIFIED"] += 1
            elif status is MessageStatus.FAILED:
                failed += 1
        return TrackingResult(sent=sent, failed=failed, refused=refused)


def _status_after(answer: GateAnswer) -> MessageStatus | None:
    """The message's status after the Gate's answer; None: ask again later."""
    return {
        GateOutcome.ACCEPTED: MessageStatus.SUBMITTED,
        GateOutcome.SENT: MessageStatus.SENT,
        GateOutcome.FAILED: MessageStatus.FAILED,
        GateOutcome.REFUSED: MessageStatus.FAILED,
        GateOutcome.RETRY: None,
    }[answer.outcome]
