"""Prune the raw signal log, the messages it correlates and the buckets no window reads any more."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from libs.seedwork.clock import Clock
from reputation_service.domain.ports import PruneBefore, ReputationUnitOfWork
from reputation_service.domain.signals import MAX_WINDOW, Granularity


@dataclass(frozen=True, kw_only=True)
class Retention:
    """`signals`: the raw log and its tracked messages, by when they were recorded (a report of a fact
    arriving later than this is counted again, so it outlives the streams' 7 days); `minute_buckets` and
    `hour_buckets` by their start (hour buckets serve windows up to 30 days)."""

    signals: timedelta
    minute_buckets: timedelta
    hour_buckets: timedelta

    def __post_init__(self) -> None:
        if self.hour_buckets < MAX_WINDOW + timedelta(hours=1):
            raise ValueError("hour buckets must cover the longest window")


@dataclass(frozen=True)
class PruneSignals:
    batch_size: int


class PruneSignalsHandler:
    """Deletes what is past its retention in batches of `batch_size` rows, one transaction each, until a
    batch comes back short; returns how many rows went."""

    def __init__(self, uow: Callable[[], ReputationUnitOfWork], clock: Clock, retention: Retention) -> None:
        self._uow = uow
        self._clock = clock
        self._retention = retention

    async def __call__(self, command: PruneSignals) -> int:
        now = self._clock.now()
        before = PruneBefore(
            signals=now - self._retention.signals,
            # A minute past the horizon: a window's first minute bucket starts up to a minute before it.
            minute_buckets=now - self._retention.minute_buckets - timedelta(seconds=Granularity.MINUTE),
            hour_buckets=now - self._retention.hour_buckets,
        )
        pruned = 0
        while True:
            async with self._uow() as uow:
                deleted = await uow.signals.prune(before, limit=command.batch_size)
                await uow.commit()
            pruned += deleted
            if deleted < command.batch_size:
                return pruned
