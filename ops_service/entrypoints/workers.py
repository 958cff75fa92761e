"""Periodic work of the ops context: ending the timed pauses whose time has come, pruning the timeline."""

from __future__ import annotations

import asyncio
import logging

from libs.periodic import run_periodically
from libs.stores import StoreOutages
from ops_service.application.controls import ExpirePauses, ExpirePausesHandler
from ops_service.application.prune_timeline import Pruned, PruneTimeline, PruneTimelineHandler
from ops_service.infrastructure import metrics, timeline_metrics

log = logging.getLogger(__name__)


class PauseExpirer:
    """Every `interval` seconds, resumes the timed pauses that reached `paused_until` (a batch per
    transaction, at once again while batches come back full). The Gate and the Executor already treat such
    a pause as over; this records it, with its version, event and audit entry."""

    def __init__(
        self, handler: ExpirePausesHandler, *, interval: float, batch_size: int, outages: StoreOutages
    ) -> None:
        self._handler = handler
        self._interval = interval
        self._batch_size = batch_size
        self._outages = outages

    async def run_once(self) -> int:
        resumed = await self._handler(ExpirePauses(self._batch_size))
        for control in resumed:
            metrics.RESUMES.labels(control.scope.value, control.reason.value).inc()
        if resumed:
            log.info("timed pauses ended", extra={"controls": len(resumed)})
        return len(resumed)

    async def run(self, stop: asyncio.Event) -> None:
        await run_periodically(
            stop,
            self.run_once,
            every=self._interval,
            name="pause expiry",
            outages=self._outages,
            log=log,
            more_now=lambda resumed: resumed >= self._batch_size,
        )


class TimelinePruner:
    """Every `interval` seconds, deletes the timeline facts and counter buckets past their retention, a
    batch per table and transaction, at once again while a batch comes back full (a backlog drains in
    many short transactions, and a stop is heard between them)."""

    def __init__(
        self, handler: PruneTimelineHandler, *, interval: float, batch_size: int, outages: StoreOutages
    ) -> None:
        self._handler = handler
        self._interval = interval
        self._batch_size = batch_size
        self._outages = outages

    async def run_once(self) -> Pruned:
        pruned = await self._handler(PruneTimeline(self._batch_size))
        counters = pruned.minute_buckets + pruned.hour_buckets
        if pruned.events:
            timeline_metrics.TIMELINE_PRUNED.labels("timeline_events").inc(pruned.events)
        if counters:
            timeline_metrics.TIMELINE_PRUNED.labels("execution_counters").inc(counters)
        if pruned.events or counters:
            log.info("pruned the timeline", extra={"events": pruned.events, "counters": counters})
        return pruned

    async def run(self, stop: asyncio.Event) -> None:
        await run_periodically(
            stop,
            self.run_once,
            every=self._interval,
            name="timeline pruning",
            outages=self._outages,
            log=log,
            more_now=lambda pruned: pruned.largest >= self._batch_size,
        )
