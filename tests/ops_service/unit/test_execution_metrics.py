"""Execution metrics from the counters the timeline consumers keep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import InvalidArgument
from ops_service.application.execution_metrics import (
    GetExecutionMetrics,
    GetExecutionMetricsHandler,
    GetInstanceMetrics,
    GetInstanceMetricsHandler,
)
from ops_service.application.record_facts import RecordFactsHandler
from ops_service.domain.execution_counts import TimeToSend, time_bin
from ops_service.infrastructure.timeline_mapping import record_from_event
from tests.ops_service.story import build_story
from tests.ops_service.unit.timeline_fakes import FakeTimelineStore, FakeTimelineUnitOfWork

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)


async def _story_store():
    story = build_story(T0)
    store = FakeTimelineStore()
    await RecordFactsHandler()(FakeTimelineUnitOfWork(store), [record_from_event(e) for e in story.events])
    return story, store


async def test_the_organizations_numbers_over_the_last_hour():
    story, store = await _story_store()
    result = await GetExecutionMetricsHandler(lambda: FakeTimelineUnitOfWork(store), FakeClock(NOW))(
        GetExecutionMetrics(organization_id=story.org)
    )
    figures = result.figures
    counts = figures.counts
    assert (counts.submitted, counts.approved, counts.queued, counts.blocked, counts.dropped) == (
        2,
        2,
        1,
        0,
        0,
    )
    assert (counts.sent, counts.failed, counts.retries, counts.needs_review) == (2, 1, 1, 0)
    assert (counts.delivered, counts.read) == (1, 1)
    assert figures.delivered_ratio == 0.5 and figures.read_ratio == 0.5
    assert figures.not_approved_by_reason == {"CONTACT_MIN_INTERVAL": 1}
    assert figures.failures_by_class == {"PERMANENT": 1}
    # Created -> the provider's acceptance: 2.0 s and 6.8 s.
    assert figures.time_to_send.average_ms == 4400
    assert 2000 < figures.time_to_send.percentile_ms(0.95) <= 10_000
    [chosen, refused] = figures.instances
    assert chosen.instance_id == story.chosen and chosen.share_of_sent == 1.0 and chosen.cooldowns == 2
    assert chosen.avg_rate_pressure == pytest.approx(0.4) and chosen.peak_rate_pressure == pytest.approx(0.4)
    assert refused.instance_id == story.refused and refused.counts.sent == 0 and refused.cooldowns == 1
    assert result.window_start == NOW.replace(second=0) - timedelta(hours=1)


async def test_another_organization_and_an_earlier_window_see_none_of_it():
    story, store = await _story_store()
    handler = GetExecutionMetricsHandler(
        lambda: FakeTimelineUnitOfWork(store), FakeClock(NOW + timedelta(hours=2))
    )
    assert (await handler(GetExecutionMetrics(organization_id=story.org))).figures.counts.submitted == 0
    other = await handler(GetExecutionMetrics(organization_id=story.other_org, window=timedelta(hours=3)))
    assert other.figures.counts.submitted == 1 and other.figures.counts.sent == 0


async def test_an_instances_numbers_and_its_hours():
    story, store = await _story_store()
    result = await GetInstanceMetricsHandler(lambda: FakeTimelineUnitOfWork(store), FakeClock(NOW))(
        GetInstanceMetrics(organization_id=story.org, instance_id=story.chosen, window=timedelta(hours=2))
    )
    assert (result.figures.counts.approved, result.figures.counts.sent, result.figures.counts.failed) == (
        2,
        2,
        1,
    )
    assert result.figures.share_of_sent == 1.0 and result.figures.cooldowns == 2
    assert [(hour.hour_start, hour.counts) for hour in result.hours] == [
        (T0.replace(minute=0), {"approved": 2, "sent": 2, "retries": 1, "failed": 1})
    ]
    with pytest.raises(InvalidArgument):
        await GetInstanceMetricsHandler(lambda: FakeTimelineUnitOfWork(store), FakeClock(NOW))(
            GetInstanceMetrics(organization_id=story.org, instance_id=story.chosen, window=timedelta(days=31))
        )


def test_percentiles_are_read_from_the_bins():
    times = TimeToSend()
    for ms in [300] * 50 + [1500] * 45 + [20_000] * 5:
        times.bins[time_bin(ms)] += 1
        times.total_ms += ms
    assert times.average_ms == pytest.approx((300 * 50 + 1500 * 45 + 20_000 * 5) / 100)
    assert 250 <= times.percentile_ms(0.5) <= 500  # inside the bin of 300 ms
    assert 1000 <= times.percentile_ms(0.95) <= 2000
    assert 10_000 <= times.percentile_ms(0.99) <= 30_000
    assert TimeToSend().percentile_ms(0.95) == 0.0
