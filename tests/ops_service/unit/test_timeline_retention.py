"""The retention pass: what is past its retention goes, in bounded batches; what the timeline and the
metrics still read stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import NotFound
from ops_service.application.execution_metrics import (
    GetExecutionMetrics,
    GetExecutionMetricsHandler,
    GetInstanceMetrics,
    GetInstanceMetricsHandler,
)
from ops_service.application.intent_timeline import GetIntentTimeline, GetIntentTimelineHandler
from ops_service.application.prune_timeline import Pruned, PruneTimeline, PruneTimelineHandler, Retention
from ops_service.application.record_facts import RecordFactsHandler
from ops_service.config import OpsSettings
from ops_service.domain.execution_counts import MINUTE, bucket_start
from ops_service.infrastructure.timeline_mapping import record_from_event
from tests.ops_service.story import Story, build_story
from tests.ops_service.unit.timeline_fakes import FakeTimelineStore, FakeTimelineUnitOfWork

NOW = datetime(2026, 4, 2, 14, 0, tzinfo=UTC)
DEFAULTS = Retention(
    events=timedelta(days=30), minute_buckets=timedelta(hours=48), hour_buckets=timedelta(days=400)
)


async def _recorded(store: FakeTimelineStore, t0: datetime) -> Story:
    story = build_story(t0)
    await RecordFactsHandler()(FakeTimelineUnitOfWork(store), [record_from_event(e) for e in story.events])
    return story


def _handler(store: FakeTimelineStore, retention: Retention = DEFAULTS) -> PruneTimelineHandler:
    return PruneTimelineHandler(lambda: FakeTimelineUnitOfWork(store), FakeClock(NOW), retention)


async def _until_short(handler: PruneTimelineHandler, batch_size: int) -> list[Pruned]:
    passes = [await handler(PruneTimeline(batch_size))]
    while passes[-1].largest >= batch_size:
        passes.append(await handler(PruneTimeline(batch_size)))
    return passes


async def test_old_facts_and_minute_buckets_go_in_batches_and_a_recent_intent_keeps_its_timeline():
    store = FakeTimelineStore()
    old = await _recorded(store, NOW - timedelta(days=31))
    recent = await _recorded(store, NOW - timedelta(minutes=5))
    old_facts = len(old.events)
    recent_timeline = await GetIntentTimelineHandler(lambda: FakeTimelineUnitOfWork(store))(
        GetIntentTimeline(organization_id=recent.org, intent_id=recent.intent)
    )

    passes = await _until_short(_handler(store), batch_size=4)

    # No pass deletes more than a batch of a kind; together they deleted the whole old story.
    assert all(p.events <= 4 and p.minute_buckets <= 4 and p.hour_buckets <= 4 for p in passes)
    assert len(passes) > 1 and sum(p.events for p in passes) == old_facts
    assert sum(p.hour_buckets for p in passes) == 0  # 400 days
    assert len(store.facts) == len(recent.events)
    with pytest.raises(NotFound):
        await GetIntentTimelineHandler(lambda: FakeTimelineUnitOfWork(store))(
            GetIntentTimeline(organization_id=old.org, intent_id=old.intent)
        )
    assert (
        await GetIntentTimelineHandler(lambda: FakeTimelineUnitOfWork(store))(
            GetIntentTimeline(organization_id=recent.org, intent_id=recent.intent)
        )
        == recent_timeline
    )
    assert all(bucket_start(d.at, MINUTE) >= NOW - timedelta(hours=48) for d in store.kept[MINUTE])
    # The recent intent's numbers, and the old one's hours, are still read.
    clock = FakeClock(NOW)
    metrics = await GetExecutionMetricsHandler(lambda: FakeTimelineUnitOfWork(store), clock)(
        GetExecutionMetrics(organization_id=recent.org)
    )
    assert metrics.figures.counts.submitted == 2 and metrics.figures.counts.sent == 2
    old_hours = await GetInstanceMetricsHandler(
        lambda: FakeTimelineUnitOfWork(store), FakeClock(NOW - timedelta(days=30))
    )(GetInstanceMetrics(organization_id=old.org, instance_id=old.chosen, window=timedelta(days=2)))
    assert old_hours.figures.counts.sent == 2 and old_hours.hours


# Off the minute and off the hour: a window starts at its first bucket, before now minus its length.
@pytest.mark.parametrize(
    ("now", "window"),
    [(NOW + timedelta(seconds=30), timedelta(hours=6)), (NOW + timedelta(minutes=30), timedelta(days=30))],
)
async def test_the_longest_windows_keep_their_first_bucket_at_the_shortest_retention(now, window):
    shortest = Retention(
        events=timedelta(days=8), minute_buckets=timedelta(hours=6), hour_buckets=timedelta(days=30)
    )
    store = FakeTimelineStore()
    # Both intents are created in the window's first bucket.
    story = await _recorded(store, now - window - timedelta(seconds=20))
    clock = FakeClock(now)

    await _until_short(PruneTimelineHandler(lambda: FakeTimelineUnitOfWork(store), clock, shortest), 100)

    result = await GetExecutionMetricsHandler(lambda: FakeTimelineUnitOfWork(store), clock)(
        GetExecutionMetrics(organization_id=story.org, window=window)
    )
    assert result.window_start < now - window
    assert result.figures.counts.submitted == 2


async def test_nothing_due_is_an_empty_pass():
    store = FakeTimelineStore()
    await _recorded(store, NOW - timedelta(hours=1))
    assert await _handler(store)(PruneTimeline(10)) == Pruned()


def test_retention_cannot_be_shorter_than_the_streams_or_the_windows():
    with pytest.raises(ValueError, match="streams"):
        Retention(
            events=timedelta(days=7), minute_buckets=timedelta(hours=6), hour_buckets=timedelta(days=30)
        )
    with pytest.raises(ValueError, match="minute"):
        Retention(
            events=timedelta(days=8), minute_buckets=timedelta(hours=5), hour_buckets=timedelta(days=30)
        )
    with pytest.raises(ValueError, match="hour"):
        Retention(
            events=timedelta(days=8), minute_buckets=timedelta(hours=6), hour_buckets=timedelta(days=29)
        )


@pytest.mark.parametrize(
    "setting",
    [
        {"timeline_retention_days": 7},  # a redelivery could come after the fact's row went
        {"minute_counters_retention_hours": 5},  # a 6-hour window would miss its start
        {"hour_counters_retention_days": 29},  # a 30-day window would miss its start
    ],
)
def test_the_settings_refuse_a_retention_the_reads_or_the_inbox_cannot_live_with(setting):
    with pytest.raises(ValidationError):
        OpsSettings(**setting)
    OpsSettings()  # the defaults are valid
