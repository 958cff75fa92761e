"""The retention pass on real PostgreSQL: a backlog of old facts and minute buckets goes in batches, one
pass after the other without waiting, and a recent intent keeps its timeline and its numbers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.db.engine import create_engine, session_factory
from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import NotFound
from libs.stores import StoreOutages
from libs.testing.waiting import eventually
from ops_service.application.execution_metrics import GetExecutionMetrics, GetExecutionMetricsHandler
from ops_service.application.intent_timeline import GetIntentTimeline, GetIntentTimelineHandler
from ops_service.application.prune_timeline import PruneTimelineHandler, Retention
from ops_service.application.record_facts import RecordFactsHandler
from ops_service.entrypoints.workers import TimelinePruner
from ops_service.infrastructure.proto_mapping import event_to_proto
from ops_service.infrastructure.tables import messaging, timeline
from ops_service.infrastructure.timeline_mapping import record_from_event
from ops_service.infrastructure.timeline_unit_of_work import SqlAlchemyTimelineUnitOfWork
from tests.ops_service.story import Story, build_story

NOW = datetime.now(UTC).replace(microsecond=0)
TWO_DAYS_AGO = NOW - timedelta(days=2)  # minute buckets are kept 48 hours
BATCH = 10
RETENTION = Retention(
    events=timedelta(days=30), minute_buckets=timedelta(hours=48), hour_buckets=timedelta(days=400)
)

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(migrated_database: Callable[[str], str]) -> AsyncIterator[Sessions]:
    engine = create_engine(migrated_database("ops_service"))
    yield session_factory(engine)
    await engine.dispose()


def _uow(sessions: Sessions) -> Callable[[], SqlAlchemyTimelineUnitOfWork]:
    return lambda: SqlAlchemyTimelineUnitOfWork(
        sessions, tables=messaging, to_message=event_to_proto, clock=FakeClock(NOW)
    )


async def _recorded(sessions: Sessions, t0: datetime) -> Story:
    story = build_story(t0)
    async with _uow(sessions)() as uow:
        await RecordFactsHandler()(uow, [record_from_event(e) for e in story.events])
        await uow.commit()
    return story


async def _count(sessions: Sessions, table: Table, *where: ColumnElement[bool]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def _facts(sessions: Sessions, *where: ColumnElement[bool]) -> int:
    return await _count(sessions, timeline.events, *where)


async def _buckets(sessions: Sessions, minutes: int, *where: ColumnElement[bool]) -> int:
    return await _count(sessions, timeline.counters, timeline.counters.c.resolution == minutes, *where)


def _pruned(table: str) -> float:
    return REGISTRY.get_sample_value("whatlead_ops_timeline_rows_pruned_total", {"table": table}) or 0.0


async def test_a_backlog_goes_in_batches_without_waiting_and_recent_intents_stay(sessions):
    events, counters = timeline.events.c, timeline.counters.c
    old = [await _recorded(sessions, NOW - timedelta(days=31, minutes=n)) for n in range(3)]
    recent = await _recorded(sessions, NOW - timedelta(minutes=15))
    old_facts = sum(len(story.events) for story in old)
    assert old_facts > 3 * BATCH
    old_minutes = await _buckets(sessions, 1, counters.bucket_start < TWO_DAYS_AGO)
    hours_before = await _buckets(sessions, 60)
    recent_minutes = await _buckets(sessions, 1, counters.bucket_start >= TWO_DAYS_AGO)
    assert old_minutes > BATCH and recent_minutes > 0
    pruned_before = _pruned("timeline_events"), _pruned("execution_counters")

    # An hour between passes: only passes that found a full batch running again at once drain it here.
    pruner = TimelinePruner(
        PruneTimelineHandler(_uow(sessions), FakeClock(NOW), RETENTION),
        interval=3600,
        batch_size=BATCH,
        outages=StoreOutages("ops"),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(pruner.run(stop))
    try:

        async def drained() -> bool:
            old_facts_left = await _facts(sessions, events.occurred_at < NOW - timedelta(days=30))
            return (
                old_facts_left == 0 and await _buckets(sessions, 1, counters.bucket_start < TWO_DAYS_AGO) == 0
            )

        await eventually(drained, timeout=15)
    finally:
        stop.set()
        await running

    assert await _facts(sessions, events.event_id != "") == len(recent.events)
    assert await _buckets(sessions, 60) == hours_before  # kept 400 days
    assert await _buckets(sessions, 1, counters.bucket_start >= TWO_DAYS_AGO) == recent_minutes
    assert _pruned("timeline_events") - pruned_before[0] == old_facts
    assert _pruned("execution_counters") - pruned_before[1] == old_minutes

    timeline_of = GetIntentTimelineHandler(_uow(sessions))
    kept = await timeline_of(GetIntentTimeline(organization_id=recent.org, intent_id=recent.intent))
    assert [fact.event_id for fact in kept] == recent.timeline
    with pytest.raises(NotFound):
        await timeline_of(GetIntentTimeline(organization_id=old[0].org, intent_id=old[0].intent))
    metrics = await GetExecutionMetricsHandler(_uow(sessions), FakeClock(NOW))(
        GetExecutionMetrics(organization_id=recent.org)
    )
    assert (metrics.figures.counts.submitted, metrics.figures.counts.sent) == (2, 2)
