"""Signals as the consumers record them and windows read them back, through hand-written fakes (no I/O):
each fact once whatever the order or the number of reports, latency once both ends are known, soft
failures after the ack timeout, and windows read from buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.message import Message

from libs.rpc.convert import to_timestamp
from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import InvalidArgument, NotFound
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import ConnectionState, Provider, Purpose
from reputation_service.application.prune_signals import PruneSignals, PruneSignalsHandler, Retention
from reputation_service.application.record_signals import RecordSignalsHandler
from reputation_service.application.window_counts import (
    CountingPolicy,
    GetWindowStats,
    GetWindowStatsHandler,
    WindowCountsReader,
)
from reputation_service.domain.instance import Instance
from reputation_service.domain.signals import (
    LATENCY_BINS,
    Granularity,
    SignalKind,
    WindowCounts,
    latency_bin,
    latency_bin_bounds,
    latency_quantile,
    message_key,
    plan_window,
)
from reputation_service.entrypoints.consumers import ExecutorEventSignals, ProviderEventSignals
from reputation_service.infrastructure import metrics
from tests.reputation_service.unit.fakes import FakeReputationUnitOfWork
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import executor_events_pb2, provider_events_pb2
from whatlead.executor.v1 import executor_pb2

ORG, OTHER_ORG = "org-acme", "org-other"
START = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
ACK_TIMEOUT = timedelta(minutes=15)
POLICY = CountingPolicy(minute_horizon=timedelta(days=8), ack_timeout=ACK_TIMEOUT)
HOUR, DAY, WEEK = timedelta(hours=1), timedelta(days=1), timedelta(days=7)
PT = provider_events_pb2


class Harness:
    """The two consumers' handlers over one fake store, one transaction per event as a consumer applies it."""

    def __init__(self, instance: Instance | None = None) -> None:
        self.clock = FakeClock(START + timedelta(minutes=5))  # the facts below happened a little earlier
        self.uow = FakeReputationUnitOfWork(self.clock)
        record = RecordSignalsHandler(self.clock)
        self.providers = ProviderEventSignals(record, self.clock)
        self.executor = ExecutorEventSignals(record, self.clock)
        self.reader = WindowCountsReader(self.clock, POLICY)
        self.registered = instance or self.register(ORG)
        self.uow.seed(self.registered)
        self.instance = self.registered.id

    def register(self, organization: str) -> Instance:
        return Instance.register(
            organization_id=organization,
            display_name="Sales",
            provider=Provider.WAHA,
            provider_instance_ref=f"sales-{new_id()}",
            phone="5511987654321",
            purposes=frozenset({Purpose.DISPATCH}),
            connection_state=ConnectionState.CONNECTED,
            now=self.clock.now(),
        )

    async def ingest(self, *events: Message) -> None:
        for event in events:
            async with self.uow as uow:
                handler = self.providers if isinstance(event, PT.ProviderEventReceived) else self.executor
                await handler(event, uow)
                await uow.commit()

    async def window(self, length: timedelta = HOUR, instance_id: str | None = None) -> WindowCounts:
        async with self.uow as uow:
            [counts] = await self.reader(uow, instance_id or self.instance, [length])
        return counts

    def signals(self, kind: SignalKind) -> list:
        return [s for s in self.uow.signals.state.signals.values() if s.kind is kind]


@pytest.fixture
def h() -> Harness:
    return Harness()


def _meta(organization: str = "", at: datetime | None = None) -> common_pb2.EventMeta:
    return common_pb2.EventMeta(
        event_id=new_id(), organization_id=organization, occurred_at=to_timestamp(at or START)
    )


def sent(
    h: Harness, message_id: str, *, at: datetime, job_id: str | None = None, attempts: int = 1, instance=None
):
    return executor_events_pb2.MessageSent(
        meta=_meta(ORG, at),
        job_id=job_id or new_id(),
        intent_id=new_id(),
        instance_id=instance or h.instance,
        provider=common_pb2.PROVIDER_WAHA,
        provider_message_id=message_id,
        attempts=attempts,
        sent_at=to_timestamp(at),
    )


def failed(
    h: Harness,
    job_id: str,
    *,
    at: datetime,
    attempts: int = 1,
    error_class: executor_pb2.ErrorClass.ValueType = executor_pb2.ERROR_CLASS_PERMANENT,
    restriction: common_pb2.RestrictionKind.ValueType = common_pb2.RESTRICTION_KIND_UNSPECIFIED,
    code: str = "http_400",
):
    return executor_events_pb2.MessageFailed(
        meta=_meta(ORG, at),
        job_id=job_id,
        intent_id=new_id(),
        instance_id=h.instance,
        provider=common_pb2.PROVIDER_WAHA,
        error=executor_pb2.JobError(error_class=error_class, code=code, restriction_kind=restriction),
        attempts=attempts,
        failed_at=to_timestamp(at),
    )


def report(
    h: Harness,
    kind: PT.ProviderEventType.ValueType,
    *,
    at: datetime,
    message_id: str = "",
    instance=None,
    **fields,
):
    fields.setdefault("from_me", bool(message_id))
    return PT.ProviderEventReceived(
        meta=_meta("", at),
        type=kind,
        provider=common_pb2.PROVIDER_WAHA,
        instance_id=h.instance if instance is None else instance,
        provider_instance_ref="sales-1",
        provider_message_id=message_id,
        occurred_at=to_timestamp(at),
        origin=fields.pop("origin", PT.PROVIDER_EVENT_ORIGIN_WEBHOOK),
        **fields,
    )


def waha_id(chat: str, message: str) -> str:
    return f"true_{chat}_{message}"


# --- fact keys ------------------------------------------------------------------------------------------


def test_a_message_has_one_key_however_the_provider_spells_its_chat():
    assert message_key("true_5511987654321@c.us_3EB0AAAA") == "3EB0AAAA"
    assert message_key("true_123456789@lid_3EB0AAAA") == "3EB0AAAA"
    assert message_key("false_120363@g.us_3EB0AAAA_5511987654321@c.us") == "3EB0AAAA"  # group, participant
    assert message_key("BAE5F2D1C0FFEE") == "BAE5F2D1C0FFEE"  # Evolution's key.id, wuzapi: as is
    assert message_key("x" * 500).startswith("sha256:") and len(message_key("x" * 500)) <= 128


async def test_the_executors_send_and_the_webhooks_about_it_meet_on_the_message(h):
    at = START
    await h.ingest(
        sent(h, waha_id("5511987654321@c.us", "3EB0A1"), at=at),
        report(
            h,
            PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED,
            message_id=waha_id("99@lid", "3EB0A1"),
            at=at + timedelta(seconds=2),
        ),
    )

    [delivered] = h.signals(SignalKind.DELIVERED)
    assert delivered.ack_latency_ms == 2000
    counts = await h.window()
    assert (counts.sent, counts.delivered, counts.delivery_rate) == (1, 1, 1.0)


# --- each fact once -------------------------------------------------------------------------------------


async def test_the_providers_server_ack_is_not_a_second_send(h):
    message = waha_id("5511@c.us", "3EB0S1")
    await h.ingest(
        sent(h, message, at=START),
        report(h, PT.PROVIDER_EVENT_TYPE_MESSAGE_SENT, message_id=message, at=START),
    )

    assert (await h.window()).sent == 1


async def test_every_fact_reported_twice_counts_once(h):
    message = waha_id("5511@c.us", "3EB0D1")
    events = [
        sent(h, message, at=START),
        report(
            h, PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, message_id=message, at=START + timedelta(seconds=1)
        ),
        report(h, PT.PROVIDER_EVENT_TYPE_MESSAGE_READ, message_id=message, at=START + timedelta(seconds=9)),
        report(
            h,
            PT.PROVIDER_EVENT_TYPE_MESSAGE_REPLIED,
            message_id="false_5511@c.us_IN1",
            at=START,
            from_me=False,
        ),
        report(h, PT.PROVIDER_EVENT_TYPE_CONNECTION_DISCONNECTED, at=START),
    ]
    await h.ingest(*events)
    first = await h.window()

    # The same events again, and each as another report would carry it (another event id).
    again = [type(e).FromString(e.SerializeToString()) for e in events]
    for event in again:
        event.meta.event_id = new_id()
    await h.ingest(*events, *again)

    assert await h.window() == first
    assert (first.sent, first.delivered, first.read, first.replied, first.disconnects) == (1, 1, 1, 1, 1)
    assert len(h.uow.signals.state.signals) == 5


async def test_a_delivery_reported_before_its_send_still_counts_and_gets_its_latency(h):
    message = waha_id("5511@c.us", "3EB0E1")
    await h.ingest(
        report(h, PT.PROVIDER_EVENT_TYPE_MESSAGE_READ, message_id=message, at=START + timedelta(seconds=8)),
        report(
            h, PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, message_id=message, at=START + timedelta(seconds=3)
        ),
    )
    before_send = await h.window()
    assert (before_send.sent, before_send.delivered, before_send.ack_latency_p50_ms) == (0, 1, None)

    await h.ingest(sent(h, message, at=START))

    counts = await h.window()
    assert (counts.sent, counts.delivered, counts.read) == (1, 1, 1)
    assert h.signals(SignalKind.DELIVERED)[0].ack_latency_ms == 3000
    assert counts.avg_send_latency_ms == 3000
    assert counts.ack_latency_p50_ms is not None and 2800 <= counts.ack_latency_p50_ms <= 4000


async def test_any_order_of_the_same_facts_gives_the_same_counts(h):
    message = waha_id("5511@c.us", "3EB0F1")
    events = [
        sent(h, message, at=START),
        report(
            h, PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, message_id=message, at=START + timedelta(seconds=4)
        ),
        report(h, PT.PROVIDER_EVENT_TYPE_MESSAGE_READ, message_id=message, at=START + timedelta(seconds=6)),
    ]
    results = []
    for order in ([0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]):
        fresh = Harness(h.registered)
        await fresh.ingest(*(events[i] for i in order))
        fresh.clock.advance(hours=1)
        results.append(await fresh.window(DAY))

    assert all(r == results[0] for r in results)
    assert (results[0].sent, results[0].delivered, results[0].read, results[0].ack_timeouts) == (1, 1, 1, 0)


async def test_a_failure_the_provider_reported_and_the_executor_then_published_is_one_failure(h):
    message, job = waha_id("5511@c.us", "3EB0G1"), new_id()
    await h.ingest(
        report(h, PT.PROVIDER_EVENT_TYPE_MESSAGE_FAILED, message_id=message, at=START + timedelta(seconds=1)),
        sent(h, message, at=START, job_id=job),
        failed(h, job, at=START + timedelta(seconds=1)),
    )

    counts = await h.window()
    assert (counts.sent, counts.failed) == (1, 1)


async def test_a_send_refused_outright_is_a_failure_of_its_job(h):
    job = new_id()
    await h.ingest(failed(h, job, at=START), failed(h, job, at=START))

    assert (await h.window()).failed == 1
    [failure] = h.signals(SignalKind.FAILED)
    assert failure.fact_key.endswith(f"job:{job}:1")


async def test_an_intent_that_expired_before_any_send_is_no_signal(h):
    await h.ingest(
        failed(h, new_id(), at=START, error_class=executor_pb2.ERROR_CLASS_EXPIRED, code="expired")
    )

    assert h.uow.signals.state.signals == {}


# --- time-locks and bans --------------------------------------------------------------------------------


async def test_a_463_is_one_time_lock_per_message_whoever_reports_it(h):
    message, job = waha_id("5511@c.us", "3EB0H1"), new_id()
    await h.ingest(
        sent(h, message, at=START, job_id=job),
        report(h, PT.PROVIDER_EVENT_TYPE_MESSAGE_FAILED, message_id=message, at=START, error_code="463"),
        failed(
            h,
            job,
            at=START,
            error_class=executor_pb2.ERROR_CLASS_RESTRICTED,
            restriction=common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK,
            code="reachout_timelock",
        ),
    )

    counts = await h.window()
    assert (counts.timelocks, counts.failed) == (1, 1)


async def test_a_463_refused_at_send_time_is_a_time_lock(h):
    await h.ingest(
        failed(
            h,
            new_id(),
            at=START,
            error_class=executor_pb2.ERROR_CLASS_RESTRICTED,
            restriction=common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK,
            code="463",
        )
    )

    assert (await h.window()).timelocks == 1


async def test_the_same_session_time_lock_from_a_webhook_and_a_probe_is_one(h):
    until = to_timestamp(START + timedelta(hours=6))
    await h.ingest(
        report(h, PT.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCKED, at=START, timelock_until=until),
        report(
            h,
            PT.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCKED,
            at=START + timedelta(seconds=30),
            timelock_until=until,
            origin=PT.PROVIDER_EVENT_ORIGIN_PROBE,
        ),
    )

    assert (await h.window()).timelocks == 1


async def test_bans_count_from_the_provider_and_from_the_executors_refusals(h):
    await h.ingest(
        report(
            h,
            PT.PROVIDER_EVENT_TYPE_INSTANCE_BANNED,
            at=START,
            ban_code="402",
            restriction_kind=common_pb2.RESTRICTION_KIND_TEMPORARY_BAN,
        ),
        failed(
            h,
            new_id(),
            at=START,
            error_class=executor_pb2.ERROR_CLASS_RESTRICTED,
            restriction=common_pb2.RESTRICTION_KIND_PERMANENT_BAN,
            code="banned",
        ),
    )

    counts = await h.window()
    assert (counts.bans, counts.failed, counts.timelocks) == (2, 1, 0)


# --- who is counted -------------------------------------------------------------------------------------


async def test_reports_about_instances_the_registry_does_not_know_are_dropped(h):
    stranger = new_id()
    await h.ingest(
        report(h, PT.PROVIDER_EVENT_TYPE_CONNECTION_ERROR, at=START, instance=stranger),
        report(h, PT.PROVIDER_EVENT_TYPE_CONNECTION_ERROR, at=START, instance=""),
        sent(h, "3EB0X", at=START, instance=stranger),
    )

    assert h.uow.signals.state.signals == {}


async def test_an_executor_event_naming_another_organization_is_dropped(h):
    event = sent(h, "3EB0Y", at=START)
    event.meta.organization_id = OTHER_ORG
    await h.ingest(event)

    assert h.uow.signals.state.signals == {}


async def test_receipts_of_a_contacts_message_are_not_about_our_sends(h):
    await h.ingest(
        report(
            h, PT.PROVIDER_EVENT_TYPE_MESSAGE_READ, message_id="false_5511@c.us_IN2", at=START, from_me=False
        )
    )

    assert h.uow.signals.state.signals == {}


async def test_a_fact_the_provider_dates_in_the_future_counts_now(h):
    await h.ingest(report(h, PT.PROVIDER_EVENT_TYPE_CONNECTION_ERROR, at=START + timedelta(days=2)))

    [signal] = h.signals(SignalKind.CONNECTION_ERROR)
    assert signal.occurred_at == h.clock.now()
    assert (await h.window()).connection_errors == 1


# --- soft failures --------------------------------------------------------------------------------------


async def test_a_send_without_any_answer_after_the_timeout_is_a_soft_failure(h):
    quiet, delivered, refused = (waha_id("5511@c.us", f"3EB0Q{n}") for n in range(3))
    await h.ingest(
        sent(h, quiet, at=START),
        sent(h, delivered, at=START),
        sent(h, refused, at=START),
        report(
            h, PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, message_id=delivered, at=START + timedelta(seconds=5)
        ),
        report(h, PT.PROVIDER_EVENT_TYPE_MESSAGE_FAILED, message_id=refused, at=START + timedelta(seconds=5)),
    )
    assert (await h.window()).ack_timeouts == 0  # not yet: still within the timeout

    h.clock.advance(ACK_TIMEOUT + timedelta(minutes=1))
    assert (await h.window()).ack_timeouts == 1

    # A late delivery answers it: no longer a soft failure.
    h.clock.advance(minutes=10)
    await h.ingest(report(h, PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, message_id=quiet, at=h.clock.now()))
    counts = await h.window()
    assert (counts.ack_timeouts, counts.delivered) == (0, 2)


async def test_soft_failures_of_the_day_are_read_from_hour_buckets_too(h):
    for n in range(4):
        await h.ingest(sent(h, f"3EB0R{n}", at=START + timedelta(minutes=n)))
    h.clock.advance(hours=5)

    counts = await h.window(DAY)
    assert (counts.sent, counts.ack_timeouts) == (4, 4)


# --- windows --------------------------------------------------------------------------------------------


async def test_windows_hold_what_happened_in_them(h):
    for age in (timedelta(minutes=10), timedelta(hours=3), timedelta(days=2), timedelta(days=20)):
        h.clock.set(START + timedelta(days=30) - age)
        await h.ingest(report(h, PT.PROVIDER_EVENT_TYPE_CONNECTION_DISCONNECTED, at=h.clock.now()))
    h.clock.set(START + timedelta(days=30))

    assert [(await h.window(w)).disconnects for w in (HOUR, DAY, WEEK, timedelta(days=30))] == [1, 2, 3, 4]


async def test_a_window_is_exact_to_the_minute_at_both_ends(h):
    h.clock.set(datetime(2026, 3, 2, 10, 40, tzinfo=UTC))
    await h.ingest(
        report(h, PT.PROVIDER_EVENT_TYPE_CONNECTION_ERROR, at=datetime(2026, 3, 1, 10, 39, 30, tzinfo=UTC))
    )
    await h.ingest(
        report(h, PT.PROVIDER_EVENT_TYPE_CONNECTION_ERROR, at=datetime(2026, 3, 1, 10, 41, tzinfo=UTC))
    )
    await h.ingest(
        report(h, PT.PROVIDER_EVENT_TYPE_CONNECTION_ERROR, at=datetime(2026, 3, 2, 10, 39, tzinfo=UTC))
    )

    counts = await h.window(DAY)
    assert counts.window_start == datetime(2026, 3, 1, 10, 40, tzinfo=UTC)
    assert counts.connection_errors == 2


async def test_latency_percentiles_come_from_the_histogram(h):
    for n in range(100):
        message = f"3EB0L{n:03d}"
        latency = timedelta(seconds=1) if n < 90 else timedelta(seconds=60)
        await h.ingest(
            sent(h, message, at=START),
            report(h, PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, message_id=message, at=START + latency),
        )
    h.clock.advance(minutes=2)

    counts = await h.window()
    assert counts.ack_latency_p50_ms is not None and 700 <= counts.ack_latency_p50_ms <= 1420
    assert counts.ack_latency_p95_ms is not None and 42_000 <= counts.ack_latency_p95_ms <= 85_000
    assert counts.avg_send_latency_ms == pytest.approx(0.9 * 1000 + 0.1 * 60_000)
    assert counts.p95_send_latency_ms == counts.ack_latency_p95_ms


async def test_get_window_stats_is_scoped_to_the_organization(h):
    handler = GetWindowStatsHandler(lambda: h.uow, h.reader)
    await h.ingest(report(h, PT.PROVIDER_EVENT_TYPE_CONNECTION_ERROR, at=START))

    mine = await handler(GetWindowStats(organization_id=ORG, instance_id=h.instance))
    assert mine.connection_errors == 1 and mine.window_end - mine.window_start <= HOUR + timedelta(minutes=1)
    with pytest.raises(NotFound):
        await handler(GetWindowStats(organization_id=OTHER_ORG, instance_id=h.instance))
    with pytest.raises(InvalidArgument):
        await handler(GetWindowStats(organization_id=ORG, instance_id=h.instance, window=timedelta(days=31)))


# --- pruning --------------------------------------------------------------------------------------------


async def test_pruning_drops_the_raw_log_after_its_retention_but_not_the_counters_windows_read(h):
    prune = PruneSignalsHandler(
        lambda: h.uow,
        h.clock,
        Retention(
            signals=timedelta(days=8), minute_buckets=timedelta(days=8), hour_buckets=timedelta(days=35)
        ),
    )
    await h.ingest(sent(h, "3EB0P1", at=START), report(h, PT.PROVIDER_EVENT_TYPE_CONNECTION_ERROR, at=START))
    h.clock.advance(days=9)

    assert await prune(PruneSignals(batch_size=1)) >= 4  # in batches of one row per table
    assert h.uow.signals.state.signals == {} and h.uow.signals.state.messages == {}
    counts = await h.window(timedelta(days=10))
    assert (counts.sent, counts.connection_errors) == (1, 1)  # hour buckets still there


# --- bucketing math -------------------------------------------------------------------------------------


def test_a_day_is_read_from_minute_edges_and_hour_buckets_that_have_all_timed_out():
    now = datetime(2026, 3, 2, 10, 40, 20, tzinfo=UTC)
    plan = plan_window(now, DAY, minute_horizon=timedelta(days=8), ack_timeout=ACK_TIMEOUT)

    minute, hour = Granularity.MINUTE, Granularity.HOUR
    assert plan.start == datetime(2026, 3, 1, 10, 40, tzinfo=UTC)
    assert [(r.granularity, r.start, r.end) for r in plan.ranges] == [
        (minute, datetime(2026, 3, 1, 10, 40, tzinfo=UTC), datetime(2026, 3, 1, 11, 0, tzinfo=UTC)),
        (hour, datetime(2026, 3, 1, 11, 0, tzinfo=UTC), datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
        (minute, datetime(2026, 3, 2, 10, 0, tzinfo=UTC), datetime(2026, 3, 2, 10, 41, tzinfo=UTC)),
    ]
    assert plan.timed_out_before == now - ACK_TIMEOUT


def test_a_window_older_than_the_minute_buckets_starts_on_the_hour():
    now = datetime(2026, 3, 31, 10, 40, tzinfo=UTC)
    plan = plan_window(now, timedelta(days=30), minute_horizon=timedelta(days=8), ack_timeout=ACK_TIMEOUT)

    assert plan.start == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert [r.granularity for r in plan.ranges] == [Granularity.HOUR, Granularity.MINUTE]
    assert (
        sum(1 for r in plan.ranges for _ in range(int((r.end - r.start) / timedelta(seconds=r.granularity))))
        <= 30 * 24 + 61
    )


def test_a_short_window_inside_one_hour_is_minutes_only():
    now = datetime(2026, 3, 2, 10, 40, tzinfo=UTC)
    plan = plan_window(now, timedelta(minutes=30), minute_horizon=timedelta(days=8), ack_timeout=ACK_TIMEOUT)

    assert [(r.granularity, r.start, r.end) for r in plan.ranges] == [
        (
            Granularity.MINUTE,
            datetime(2026, 3, 2, 10, 10, tzinfo=UTC),
            datetime(2026, 3, 2, 10, 41, tzinfo=UTC),
        )
    ]


def test_latency_bins_are_log_scale_and_their_quantiles_stay_within_a_bin():
    assert latency_bin(0) == 0 and latency_bin(249) == 0 and latency_bin(250) == 1
    assert latency_bin(353) == 1 and latency_bin(354) == 2  # 250·√2 ≈ 353.6
    assert latency_bin(10**9) == LATENCY_BINS - 1
    for latency in (300, 1000, 2500, 30_000, 600_000):
        bins = [0] * LATENCY_BINS
        bins[latency_bin(latency)] = 10
        low, high = latency_bin_bounds(latency_bin(latency))
        assert high is not None and low <= latency < high
        estimate = latency_quantile(bins, 0.5)
        assert estimate is not None and low <= estimate <= high
    assert latency_quantile([0] * LATENCY_BINS, 0.5) is None


async def test_dropped_and_recorded_reports_are_counted_once_committed(h):
    recorded = metrics.SIGNALS.labels("CONNECTION_ERROR")._value.get()
    dropped = metrics.UNKNOWN_INSTANCE.labels("WEBHOOK")._value.get()

    await h.ingest(
        report(h, PT.PROVIDER_EVENT_TYPE_CONNECTION_ERROR, at=START),
        report(h, PT.PROVIDER_EVENT_TYPE_CONNECTION_ERROR, at=START, instance=new_id()),
    )

    assert metrics.SIGNALS.labels("CONNECTION_ERROR")._value.get() == recorded + 1
    assert metrics.UNKNOWN_INSTANCE.labels("WEBHOOK")._value.get() == dropped + 1


async def test_a_send_whose_provider_named_no_message_is_never_a_soft_failure(h):
    await h.ingest(sent(h, "", at=START))
    h.clock.advance(hours=1)

    counts = await h.window(DAY)
    assert (counts.sent, counts.ack_timeouts) == (1, 0)


async def test_a_send_and_its_failure_in_one_batch_meet_the_providers_report_of_it(h):
    message, job = waha_id("5511@c.us", "3EB0B1"), new_id()
    async with h.uow as uow:
        await h.executor.handle_many([sent(h, message, at=START, job_id=job), failed(h, job, at=START)], uow)
        await uow.commit()
    await h.ingest(report(h, PT.PROVIDER_EVENT_TYPE_MESSAGE_FAILED, message_id=message, at=START))

    counts = await h.window()
    assert (counts.sent, counts.failed, counts.ack_timeouts) == (1, 1, 0)


async def test_one_fact_twice_in_one_batch_is_recorded_once(h):
    message = waha_id("5511@c.us", "3EB0B2")
    delivered = report(h, PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, message_id=message, at=START)
    async with h.uow as uow:
        await h.providers.handle_many([delivered, delivered], uow)
        await uow.commit()

    assert (await h.window()).delivered == 1
