"""Periodic work of the reputation context: pruning the signal log, evaluating reputations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from libs.periodic import run_periodically
from libs.stores import StoreOutages
from reputation_service.application.check_sessions import CheckSessionsHandler, StatusChecked
from reputation_service.application.prune_signals import PruneSignals, PruneSignalsHandler
from reputation_service.application.reputation_queries import ReputationCensusHandler
from reputation_service.application.reputation_updates import EvaluateDue, EvaluateDueHandler, Outcome
from reputation_service.domain.evaluation import HealthStatus
from reputation_service.domain.warmup import WarmupPhase
from reputation_service.infrastructure import metrics

log = logging.getLogger(__name__)


class SignalPruner:
    """Every `interval` seconds, deletes what is past its retention, in batches (one transaction each), so
    the log never takes long locks or one huge delete. Replicas may all run it: a row deleted twice is
    deleted once."""

    def __init__(
        self, handler: PruneSignalsHandler, *, interval: float, batch_size: int, outages: StoreOutages
    ) -> None:
        self._handler = handler
        self._interval = interval
        self._batch_size = batch_size
        self._outages = outages

    async def run_once(self) -> int:
        pruned = await self._handler(PruneSignals(self._batch_size))
        if pruned:
            metrics.SIGNALS_PRUNED.inc(pruned)
            log.info("pruned the signal log", extra={"rows": pruned})
        return pruned

    async def run(self, stop: asyncio.Event) -> None:
        await run_periodically(
            stop, self.run_once, every=self._interval, name="signal pruning", outages=self._outages, log=log
        )


def count_outcomes(outcomes: Sequence[Outcome], committed: bool) -> None:
    """Once an evaluation's transaction committed: the evaluations and the cooldowns they started."""
    if not committed:
        return
    for outcome in outcomes:
        evaluation = outcome.evaluation
        changed = outcome.trigger == "registered" or (evaluation is not None and evaluation.changed)
        metrics.EVALUATIONS.labels(outcome.trigger, "true" if changed else "false").inc()
        if evaluation is not None and evaluation.cooldown_started is not None:
            metrics.COOLDOWNS_STARTED.labels(evaluation.cooldown_started.reason.value).inc()


class ReputationEvaluator:
    """Two loops over the same use case. The debounced one, every `poll` seconds, evaluates the instances
    that new signals marked (each at most once per debounce); the periodic one, every `interval`
    seconds, also ends cooldowns, ages numbers that went silent, and refreshes the per-state gauges.
    Each works in batches until fewer than a batch are due."""

    def __init__(
        self,
        handler: EvaluateDueHandler,
        census: ReputationCensusHandler,
        *,
        poll: float,
        interval: float,
        batch_size: int,
        outages: StoreOutages,
    ) -> None:
        self._handler = handler
        self._census = census
        self._poll = poll
        self._interval = interval
        self._batch_size = batch_size
        self._outages = outages

    async def evaluate_due(self, *, dirty_only: bool) -> int:
        total = 0
        while True:
            evaluated = await self._handler(EvaluateDue(dirty_only=dirty_only))
            total += evaluated
            if evaluated < self._batch_size:
                return total

    async def periodic_pass(self) -> int:
        evaluated = await self.evaluate_due(dirty_only=False)
        census = await self._census()
        for health in HealthStatus:
            count = sum(n for (h, _), n in census.items() if h is health)
            metrics.INSTANCES_BY_HEALTH.labels(health.value).set(count)
        for phase in WarmupPhase:
            count = sum(n for (_, p), n in census.items() if p is phase)
            metrics.INSTANCES_BY_PHASE.labels(phase.value).set(count)
        return evaluated

    async def run_debounced(self, stop: asyncio.Event) -> None:
        await self._loop(stop, self._poll, "debounced evaluation", lambda: self.evaluate_due(dirty_only=True))

    async def run_periodic(self, stop: asyncio.Event) -> None:
        await self._loop(stop, self._interval, "periodic reputation pass", self.periodic_pass)

    async def _loop(
        self, stop: asyncio.Event, every: float, name: str, work: Callable[[], Awaitable[int]]
    ) -> None:
        await run_periodically(stop, work, every=every, name=name, outages=self._outages, log=log)


class SessionStatusChecker:
    """Every `interval` seconds, a status check pass (CheckSessionsHandler): asks the provider about the
    sessions whose last report is due and applies the answers as reports, so a webhook that never came
    is caught. Replicas may all run it: a report older than the one applied is ignored."""

    def __init__(self, handler: CheckSessionsHandler, *, interval: float, outages: StoreOutages) -> None:
        self._handler = handler
        self._interval = interval
        self._outages = outages

    async def run_once(self) -> StatusChecked:
        checked = await self._handler()
        metrics.STATUS_CHECKS.labels("ok").inc(checked.checked - checked.unavailable - checked.not_configured)
        metrics.STATUS_CHECKS.labels("unavailable").inc(checked.unavailable)
        metrics.STATUS_CHECKS.labels("not_configured").inc(checked.not_configured)
        return checked

    async def run(self, stop: asyncio.Event) -> None:
        await run_periodically(
            stop,
            self.run_once,
            every=self._interval,
            name="session status check",
            outages=self._outages,
            log=log,
        )
