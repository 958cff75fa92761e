"""Periodic work of the reputation context: pruning the signal log."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from libs.stores import StoreOutages
from reputation_service.application.prune_signals import PruneSignals, PruneSignalsHandler
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
        while not stop.is_set():
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._outages.report(exc) is None:
                    log.warning("signal pruning failed", extra={"error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
