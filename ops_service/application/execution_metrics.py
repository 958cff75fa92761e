"""GetExecutionMetrics and GetInstanceMetrics: from ops' own counters, never by asking other services."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from libs.seedwork.clock import Clock
from libs.seedwork.errors import InvalidArgument
from libs.seedwork.ids import is_valid_id
from libs.seedwork.organizations import require_organization
from ops_service.application.timeline_ports import TimelineUnitOfWork
from ops_service.domain.execution_counts import (
    APPROVED,
    FAILED,
    HOUR,
    RETRIES,
    SENT,
    InstanceFigures,
    OrganizationFigures,
    bucket_start,
    instance_figures,
    organization_figures,
    resolution_for,
)

DEFAULT_WINDOW = timedelta(minutes=60)
MAX_WINDOW = timedelta(days=30)
DEFAULT_MAX_INSTANCES = 50


def _window(window: timedelta | None) -> timedelta:
    length = window if window is not None else DEFAULT_WINDOW
    if length <= timedelta(0) or length > MAX_WINDOW:
        raise InvalidArgument.of("window", "must be more than 0 and at most 30 days")
    return length


@dataclass(frozen=True, kw_only=True)
class GetExecutionMetrics:
    organization_id: str
    window: timedelta | None = None  # None: the last 60 minutes
    max_instances: int = 0  # 0: 50


@dataclass(frozen=True)
class ExecutionMetricsResult:
    figures: OrganizationFigures
    window_start: datetime
    window_end: datetime


class GetExecutionMetricsHandler:
    def __init__(self, uow: Callable[[], TimelineUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, query: GetExecutionMetrics) -> ExecutionMetricsResult:
        require_organization(query.organization_id)
        length = _window(query.window)
        end = self._clock.now()
        resolution = resolution_for(length)
        start = bucket_start(end - length, resolution)
        async with self._uow() as uow:
            rows = await uow.timeline.counters(query.organization_id, start, resolution)
        figures = organization_figures(rows, query.max_instances or DEFAULT_MAX_INSTANCES)
        return ExecutionMetricsResult(figures, start, end)


@dataclass(frozen=True, kw_only=True)
class GetInstanceMetrics:
    organization_id: str
    instance_id: str
    window: timedelta | None = None


@dataclass(frozen=True)
class HourFigures:
    hour_start: datetime
    counts: dict[str, int] = field(default_factory=dict)  # approved, sent, failed, retries


@dataclass(frozen=True)
class InstanceMetricsResult:
    figures: InstanceFigures
    window_start: datetime
    window_end: datetime
    hours: list[HourFigures]


class GetInstanceMetricsHandler:
    """An instance ops never saw has zero counts (its share of sends is against its organization's)."""

    def __init__(self, uow: Callable[[], TimelineUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, query: GetInstanceMetrics) -> InstanceMetricsResult:
        require_organization(query.organization_id)
        if not is_valid_id(query.instance_id):
            raise InvalidArgument.of("instance_id", "must be a UUID")
        length = _window(query.window)
        end = self._clock.now()
        resolution = resolution_for(length)
        start = bucket_start(end - length, resolution)
        async with self._uow() as uow:
            rows = await uow.timeline.counters(query.organization_id, start, resolution, query.instance_id)
            sent_by_all = sum(
                row.count
                for row in await uow.timeline.counters(query.organization_id, start, resolution)
                if row.metric == SENT
            )
            hour_rows = await uow.timeline.hours(
                query.organization_id, query.instance_id, bucket_start(start, HOUR)
            )
        figures = instance_figures(query.instance_id, rows)
        figures.share_of_sent = figures.counts.sent / sent_by_all if sent_by_all else 0.0
        per_hour: defaultdict[datetime, dict[str, int]] = defaultdict(dict)
        for row in hour_rows:
            if row.metric in (APPROVED, SENT, FAILED, RETRIES):
                per_hour[row.hour][row.metric] = per_hour[row.hour].get(row.metric, 0) + row.count
        hours = [HourFigures(hour, counts) for hour, counts in sorted(per_hour.items())]
        return InstanceMetricsResult(figures, start, end, hours)
