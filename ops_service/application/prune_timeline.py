"""Prune ops' read model: timeline facts and counter buckets past their retention."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from libs.seedwork.clock import Clock
from ops_service.application.execution_metrics import MAX_WINDOW
from ops_service.application.timeline_ports import TimelineUnitOfWork
from ops_service.domain.execution_counts import HOUR, MINUTE, MINUTE_WINDOW_LIMIT

# The streams keep an event 7 days (libs/messaging/streams.py): a fact is deleted only once no copy of it
# can be delivered again, since its row is also the consumers' inbox entry.
MIN_TIMELINE_RETENTION = timedelta(days=8)


@dataclass(frozen=True, kw_only=True)
class Retention:
    """How long each kind of row is kept: facts by when they occurred, buckets by their start."""

    events: timedelta
    minute_buckets: timedelta
    hour_buckets: timedelta

    def __post_init__(self) -> None:
        if self.events < MIN_TIMELINE_RETENTION:
            raise ValueError("timeline events must outlive the streams' 7 days")
        if self.minute_buckets < MINUTE_WINDOW_LIMIT:
            raise ValueError("minute buckets must cover the longest window read from them")
        if self.hour_buckets < MAX_WINDOW:
            raise ValueError("hour buckets must cover the longest metrics window")


@dataclass(frozen=True)
class PruneTimeline:
    batch_size: int


@dataclass(frozen=True)
class Pruned:
    """Rows deleted by one pass, per kind."""

    events: int = 0
    minute_buckets: int = 0
    hour_buckets: int = 0

    @property
    def largest(self) -> int:
        return max(self.events, self.minute_buckets, self.hour_buckets)


class PruneTimelineHandler:
    """Deletes up to `batch_size` rows of each kind past its retention, one transaction per kind, so a
    backlog never makes one huge transaction; a full batch means more may be due (the caller runs again).
    Replicas may all run it: each skips the rows another is deleting."""

    def __init__(self, uow: Callable[[], TimelineUnitOfWork], clock: Clock, retention: Retention) -> None:
        self._uow = uow
        self._clock = clock
        self._retention = retention

    async def __call__(self, command: PruneTimeline) -> Pruned:
        now = self._clock.now()
        limit = command.batch_size
        async with self._uow() as uow:
            events = await uow.timeline.prune_events(now - self._retention.events, limit=limit)
            await uow.commit()
        buckets = []
        for resolution, kept in (
            (MINUTE, self._retention.minute_buckets),
            (HOUR, self._retention.hour_buckets),
        ):
            # One bucket more: a window's start is rounded down to its bucket, up to a bucket before it.
            before = now - kept - resolution
            async with self._uow() as uow:
                buckets.append(await uow.timeline.prune_counters(resolution, before, limit=limit))
                await uow.commit()
        return Pruned(events, *buckets)
