"""Keeping each instance's reputation: a restriction cools the number the moment its signal is recorded,
other signals make the instance due for a debounced evaluation of its windows, and a periodic pass ends
cooldowns and ages silent numbers. Every change is announced through the outbox, with the state it
belongs to: ReputationEvaluated when anything another context sees moved, CooldownStarted for a cooldown
that started; never one event per signal (docs/adr/0044-reputation-signals.md, "Evaluation").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from libs.seedwork.clock import Clock
from libs.seedwork.ids import new_id
from reputation_service.application.record_signals import SignalsRecorded
from reputation_service.application.reputation_policy import OrganizationPolicies
from reputation_service.application.window_counts import WindowCountsReader
from reputation_service.domain.evaluation import Evaluation, ReputationState, evaluate, restriction_cooldown
from reputation_service.domain.events import CooldownStarted, ReputationEvaluated
from reputation_service.domain.instance import Instance
from reputation_service.domain.ports import InstanceReputation, ReputationUnitOfWork
from reputation_service.domain.signals import WindowCounts
from reputation_service.domain.window_stats import WINDOW_LENGTH, Window, WindowSet, WindowStats

_WINDOWS = (Window.HOUR, Window.DAY, Window.WEEK)


def window_stats(window: Window, counts: WindowCounts) -> WindowStats:
    """The evaluation's view of one window's counters."""
    return WindowStats(
        window=window,
        sent=counts.sent,
        delivered=counts.delivered,
        read=counts.read,
        replied=counts.replied,
        received=counts.received,
        failed=counts.failed,
        ack_timeouts=counts.ack_timeouts,
        disconnects=counts.disconnects,
        connection_errors=counts.connection_errors,
        timelocks=counts.timelocks,
        bans=counts.bans,
        ack_latency_p50_ms=counts.ack_latency_p50_ms,
        ack_latency_p95_ms=counts.ack_latency_p95_ms,
    )


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What one evaluation did, for the metrics once its transaction committed."""

    trigger: str  # "windows", "restriction" or "registered"
    evaluation: Evaluation | None = None


class ReputationUpdater:
    """Applies evaluations to the stored reputations, inside the caller's transaction."""

    def __init__(
        self,
        clock: Clock,
        policies: OrganizationPolicies,
        windows: WindowCountsReader,
        on_outcomes: Callable[[Sequence[Outcome], bool], None] | None = None,
    ) -> None:
        self._clock = clock
        self._policies = policies
        self._windows = windows
        self._on_outcomes = on_outcomes

    def registered(self, uow: ReputationUnitOfWork, instance: Instance) -> InstanceReputation:
        """The first state of a new number: the baseline score in its organization's initial phase,
        announced with its registration (version 1, so the Gate applies it)."""
        now = self._clock.now()
        policy = self._policies.of(instance.organization_id)
        initial = ReputationState.initial(now=now, phase=policy.initial_phase)
        state = replace(initial, version=1, evaluated_at=now)
        uow.emit(
            ReputationEvaluated(
                event_id=new_id(),
                organization_id=instance.organization_id,
                aggregate_id=instance.id,
                occurred_at=now,
                state=state,
                previous_score=None,
                previous_health=None,
                previous_phase=None,
            )
        )
        self._after(uow, [Outcome(trigger="registered")])
        return InstanceReputation(
            instance_id=instance.id,
            organization_id=instance.organization_id,
            registered_at=instance.created_at,
            state=state,
        )

    async def signals_recorded(self, uow: ReputationUnitOfWork, recorded: SignalsRecorded) -> None:
        """Restrictions cool their numbers now; every instance with a new fact is due for its windows."""
        if not recorded.recorded:
            return
        # Every instance the batch touches, locked in one order: the two consumers never wait on each
        # other in a circle, and the evaluator (which skips locked rows) never overwrites what they do.
        reputations = await uow.reputations.lock({s.instance_id for s in recorded.recorded})
        outcomes: list[Outcome] = []
        now = self._clock.now()
        for restriction in recorded.restrictions:
            reputation = reputations.get(restriction.instance_id)
            if reputation is None:
                continue
            evaluation = restriction_cooldown(
                reputation.state,
                restriction.kind,
                self._policies.of(reputation.organization_id).thresholds,
                now=now,
                provider_until=restriction.until,
            )
            reputations[reputation.instance_id] = await self._apply(uow, reputation, evaluation, now)
            outcomes.append(Outcome(trigger="restriction", evaluation=evaluation))
        # After the restrictions: saving a state clears the mark, and their facts are in the windows too.
        await uow.reputations.mark_dirty(set(reputations), at=now)
        self._after(uow, outcomes)

    async def evaluate(self, uow: ReputationUnitOfWork, reputation: InstanceReputation) -> Evaluation:
        """Evaluate one locked reputation from its hour, day and week."""
        counts = await self._windows(uow, reputation.instance_id, [WINDOW_LENGTH[w] for w in _WINDOWS])
        hour, day, week = (window_stats(w, c) for w, c in zip(_WINDOWS, counts, strict=True))
        now = self._clock.now()
        evaluation = evaluate(
            reputation.state,
            WindowSet(hour=hour, day=day, week=week),
            self._policies.of(reputation.organization_id).thresholds,
            now=now,
            instance_age=max(timedelta(0), now - reputation.registered_at),
        )
        await self._apply(uow, reputation, evaluation, now)
        self._after(uow, [Outcome(trigger="windows", evaluation=evaluation)])
        return evaluation

    async def _apply(
        self, uow: ReputationUnitOfWork, reputation: InstanceReputation, evaluation: Evaluation, now: datetime
    ) -> InstanceReputation:
        announced = evaluation.changed or evaluation.cooldown_started is not None
        explanation = evaluation.explanation.as_dict() if announced else None
        await uow.reputations.save(reputation.instance_id, evaluation.state, explanation=explanation)
        if evaluation.changed:
            uow.emit(
                ReputationEvaluated(
                    event_id=new_id(),
                    organization_id=reputation.organization_id,
                    aggregate_id=reputation.instance_id,
                    occurred_at=now,
                    state=evaluation.state,
                    previous_score=evaluation.previous.score,
                    previous_health=evaluation.previous.health,
                    previous_phase=evaluation.previous.phase,
                )
            )
        if evaluation.cooldown_started is not None:
            uow.emit(
                CooldownStarted(
                    event_id=new_id(),
                    organization_id=reputation.organization_id,
                    aggregate_id=reputation.instance_id,
                    occurred_at=now,
                    cooldown=evaluation.cooldown_started,
                )
            )
        return replace(reputation, state=evaluation.state, explanation=explanation or reputation.explanation)

    def _after(self, uow: ReputationUnitOfWork, outcomes: Sequence[Outcome]) -> None:
        if outcomes and self._on_outcomes is not None:
            uow.after_transaction(partial(self._on_outcomes, list(outcomes)))


@dataclass(frozen=True, kw_only=True)
class EvaluationSchedule:
    """`debounce`: an instance is evaluated at most this often for new signals; `aging`: an instance not
    evaluated for this long is evaluated anyway (its windows move on without it); `batch_size`: instances
    per transaction."""

    debounce: timedelta
    aging: timedelta
    batch_size: int


@dataclass(frozen=True)
class EvaluateDue:
    dirty_only: bool  # True: the debounced pass (new signals); False: the periodic pass (everything due)


class EvaluateDueHandler:
    """One batch of the instances due, in one transaction; returns how many were evaluated. Replicas may
    all run it: each locks its batch and skips rows another holds."""

    def __init__(
        self,
        uow: Callable[[], ReputationUnitOfWork],
        clock: Clock,
        updater: ReputationUpdater,
        schedule: EvaluationSchedule,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._updater = updater
        self._schedule = schedule

    async def __call__(self, command: EvaluateDue) -> int:
        async with self._uow() as uow:
            due = await uow.reputations.due(
                self._clock.now(),
                debounce=self._schedule.debounce,
                aging=self._schedule.aging,
                limit=self._schedule.batch_size,
                dirty_only=command.dirty_only,
            )
            for reputation in due:
                await self._updater.evaluate(uow, reputation)
            await uow.commit()
        return len(due)
