"""Signals as the running service records them: real events on the gateway's and the Executor's streams,
real PostgreSQL, windows read over gRPC. Whatever the order, however often an event arrives, and after a
restart that replays both streams from their start, every fact counts once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from sqlalchemy import func, select

from libs.db.engine import create_engine, session_factory
from libs.messaging import envelope
from libs.rpc.convert import to_timestamp
from libs.seedwork.clock import FakeClock
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import ConnectionState, Provider, Purpose
from libs.testing.jetstream import publish
from libs.testing.services import running_service
from libs.testing.waiting import eventually
from reputation_service.application.prune_signals import PruneSignals, PruneSignalsHandler, Retention
from reputation_service.application.record_signals import RecordSignalsHandler
from reputation_service.application.window_counts import CountingPolicy, WindowCountsReader
from reputation_service.bootstrap import build
from reputation_service.config import ReputationSettings
from reputation_service.domain.instance import Instance
from reputation_service.entrypoints.consumers import ExecutorEventSignals, ProviderEventSignals
from reputation_service.infrastructure.proto_mapping import event_to_proto
from reputation_service.infrastructure.tables import messaging, signal_messages, signals
from reputation_service.infrastructure.unit_of_work import SqlAlchemyReputationUnitOfWork
from tests.conftest import NATS_URL
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import executor_events_pb2, provider_events_pb2
from whatlead.executor.v1 import executor_pb2
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

ORG, OTHER_ORG = "org-signals", "org-elsewhere"
PT = provider_events_pb2
DURABLES = {"gateway": "reputation-provider-events", "executor": "reputation-send-outcomes"}


@pytest.fixture
def settings(migrated_database, subject_root, jetstream) -> ReputationSettings:
    return ReputationSettings(
        database_url=migrated_database("reputation_service"), nats_url=NATS_URL, subject_root=subject_root
    )


def _meta(organization: str, at: datetime) -> common_pb2.EventMeta:
    return common_pb2.EventMeta(event_id=new_id(), organization_id=organization, occurred_at=to_timestamp(at))


def sent(instance_id: str, message_id: str, at: datetime, job_id: str) -> executor_events_pb2.MessageSent:
    return executor_events_pb2.MessageSent(
        meta=_meta(ORG, at),
        job_id=job_id,
        intent_id=new_id(),
        instance_id=instance_id,
        provider=common_pb2.PROVIDER_WAHA,
        provider_message_id=message_id,
        attempts=1,
        sent_at=to_timestamp(at),
    )


def timelocked(instance_id: str, job_id: str, at: datetime) -> executor_events_pb2.MessageFailed:
    return executor_events_pb2.MessageFailed(
        meta=_meta(ORG, at),
        job_id=job_id,
        intent_id=new_id(),
        instance_id=instance_id,
        provider=common_pb2.PROVIDER_WAHA,
        error=executor_pb2.JobError(
            error_class=executor_pb2.ERROR_CLASS_RESTRICTED,
            code="reachout_timelock",
            restriction_kind=common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK,
        ),
        attempts=1,
        failed_at=to_timestamp(at),
    )


def reported(
    instance_id: str,
    kind: PT.ProviderEventType.ValueType,
    at: datetime,
    message_id: str = "",
    *,
    error_code: str = "",
    reply_to: str = "",
) -> PT.ProviderEventReceived:
    return PT.ProviderEventReceived(
        meta=_meta("", at),
        type=kind,
        provider=common_pb2.PROVIDER_WAHA,
        instance_id=instance_id,
        provider_instance_ref="sales-1",
        provider_message_id=message_id,
        from_me=bool(message_id),
        occurred_at=to_timestamp(at),
        origin=PT.PROVIDER_EVENT_ORIGIN_WEBHOOK,
        error_code=error_code,
        reply_to_provider_message_id=reply_to,
    )


async def register(stub) -> str:
    reply = await stub.RegisterInstance(
        reputation_pb2.RegisterInstanceRequest(
            organization_id=ORG,
            display_name="Sales",
            provider=common_pb2.PROVIDER_WAHA,
            provider_instance_ref=f"sales-{new_id()}",
            phone="5511987654321",
            purposes=[common_pb2.PURPOSE_DISPATCH],
        )
    )
    return reply.instance.id


async def window(stub, instance_id: str, **duration: int) -> reputation_pb2.WindowStats:
    request = reputation_pb2.GetWindowStatsRequest(organization_id=ORG, instance_id=instance_id)
    if duration:
        request.window.CopyFrom(duration_pb2.Duration(**duration))
    return (await stub.GetWindowStats(request)).stats


def observed(stats: reputation_pb2.WindowStats) -> tuple[int, ...]:
    return (stats.sent, stats.delivered, stats.read, stats.replied, stats.failed, stats.disconnects)


async def settled(stub, instance_id: str, expected: tuple[int, ...]) -> reputation_pb2.WindowStats:
    """The window once it shows `expected`, and still does after a further moment (nothing arrives late)."""

    async def shows() -> bool:
        return observed(await window(stub, instance_id)) == expected

    await eventually(shows, timeout=15)
    await eventually(shows, timeout=15, every=0.5)
    return await window(stub, instance_id)


async def publish_all(js, subject_root: str, events: list[Message], *, again: bool = False) -> None:
    # `again`: the same events stored in the stream once more, as a relay's re-send after JetStream's
    # duplicate window would store them (same event ids, new stream messages).
    for event in events:
        await publish(js, subject_root, event, message_id=new_id() if again else None)


async def test_facts_count_once_whatever_their_order_repeats_or_a_restart_that_replays_the_streams(
    settings, jetstream, subject_root
):
    now = datetime.now(UTC)
    message, job = f"true_5511987654321@c.us_3EB0{new_id()[-12:].upper()}", new_id()
    async with running_service(build, settings) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        instance = await register(stub)
        later_message, later_job = "true_5511@c.us_3EB0LATE", new_id()
        # Out of order: the receipts before the send they are about, the failure's two reports apart.
        events: list[Message] = [
            reported(instance, PT.PROVIDER_EVENT_TYPE_MESSAGE_READ, now - timedelta(seconds=40), message),
            reported(
                instance, PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, now - timedelta(seconds=58), message
            ),
            reported(
                instance,
                PT.PROVIDER_EVENT_TYPE_MESSAGE_REPLIED,
                now - timedelta(seconds=30),
                "false_5511@c.us_3EB0REPLY",
                reply_to=message,
            ),
            reported(instance, PT.PROVIDER_EVENT_TYPE_CONNECTION_DISCONNECTED, now - timedelta(seconds=20)),
            sent(instance, message, now - timedelta(seconds=60), job),
            reported(
                instance,
                PT.PROVIDER_EVENT_TYPE_MESSAGE_FAILED,
                now - timedelta(seconds=9),
                later_message,
                error_code="463",
            ),
            sent(instance, later_message, now - timedelta(seconds=10), later_job),
            timelocked(instance, later_job, now - timedelta(seconds=9)),
        ]
        # The Executor's own events are delivered in its order; the gateway's lead them.
        await publish_all(
            jetstream, subject_root, [e for e in events if isinstance(e, PT.ProviderEventReceived)]
        )
        await publish_all(
            jetstream, subject_root, [e for e in events if not isinstance(e, PT.ProviderEventReceived)]
        )
        await publish_all(jetstream, subject_root, events, again=True)

        first = await settled(stub, instance, (2, 1, 1, 1, 1, 1))
        assert first.delivery_rate == 0.5 and first.read_rate == 1.0
        assert 1500 <= first.avg_send_latency_ms <= 2500  # sent -> delivered: 2 s, though the send came last

    # A restart whose consumers lost their place: both streams are read again from their start.
    for context, durable in DURABLES.items():
        await jetstream.delete_consumer(envelope.stream_name(subject_root, context), durable)
    async with running_service(build, settings) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        await publish_all(jetstream, subject_root, events, again=True)
        await _consumed_everything(jetstream, subject_root)

        after = await settled(stub, instance, (2, 1, 1, 1, 1, 1))
        assert _same_counts(after, first)


def _same_counts(a: reputation_pb2.WindowStats, b: reputation_pb2.WindowStats) -> bool:
    """Equal but for the window's ends, which move with the clock."""
    a, b = type(a).FromString(a.SerializeToString()), type(b).FromString(b.SerializeToString())
    for stats in (a, b):
        stats.ClearField("window_start")
        stats.ClearField("window_end")
    return a == b


async def _consumed_everything(jetstream, subject_root: str) -> None:
    async def caught_up() -> bool:
        for context, durable in DURABLES.items():
            info = await jetstream.consumer_info(envelope.stream_name(subject_root, context), durable)
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    await eventually(caught_up, timeout=20, every=0.2)


async def test_get_window_stats_answers_for_the_organizations_own_instances_only(
    settings, jetstream, subject_root
):
    now = datetime.now(UTC)
    async with running_service(build, settings) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        instance = await register(stub)
        await publish(
            jetstream, subject_root, reported(instance, PT.PROVIDER_EVENT_TYPE_CONNECTION_ERROR, now)
        )

        async def counted() -> bool:
            return (await window(stub, instance)).connection_errors == 1

        await eventually(counted, timeout=15)
        day = await window(stub, instance, seconds=86400)
        assert day.connection_errors == 1 and day.instance_id == instance
        assert day.window_end.ToDatetime(UTC) - day.window_start.ToDatetime(UTC) <= timedelta(
            days=1, minutes=1
        )

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetWindowStats(
                reputation_pb2.GetWindowStatsRequest(organization_id=OTHER_ORG, instance_id=instance)
            )
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await window(stub, instance, seconds=31 * 86400)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_pruning_empties_the_raw_log_in_batches_and_leaves_the_windows(
    migrated_database: Callable[[str], str],
):
    url = migrated_database("reputation_service")
    engine = create_engine(url)
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=9))

    def uow() -> SqlAlchemyReputationUnitOfWork:
        return SqlAlchemyReputationUnitOfWork(
            session_factory(engine), tables=messaging, to_message=event_to_proto, clock=clock
        )

    try:
        async with uow() as registry:
            instance_id = await _registered(registry, clock)
        record = RecordSignalsHandler(clock)
        executor, providers = ExecutorEventSignals(record, clock), ProviderEventSignals(record, clock)
        for n in range(7):
            message = f"3EB0PRUNE{n}"
            async with uow() as work:
                await executor(sent(instance_id, message, clock.now() - timedelta(seconds=5), new_id()), work)
                await providers(
                    reported(instance_id, PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, clock.now(), message),
                    work,
                )
                await work.commit()
        clock.advance(days=9)
        prune = PruneSignalsHandler(
            uow,
            clock,
            Retention(
                signals=timedelta(days=8), minute_buckets=timedelta(days=8), hour_buckets=timedelta(days=35)
            ),
        )

        pruned = await prune(PruneSignals(batch_size=5))

        assert pruned >= 14 + 7  # every fact, every tracked message, the expired minute buckets
        async with uow() as work:
            for table in (signals, signal_messages):
                assert (await work.session.execute(select(func.count()).select_from(table))).scalar_one() == 0
            reader = WindowCountsReader(
                clock, CountingPolicy(minute_horizon=timedelta(days=8), ack_timeout=timedelta(minutes=15))
            )
            [ten_days] = await reader(work, instance_id, [timedelta(days=10)])
        assert (ten_days.sent, ten_days.delivered, ten_days.ack_timeouts) == (7, 7, 0)
    finally:
        await engine.dispose()


async def _registered(uow: SqlAlchemyReputationUnitOfWork, clock: FakeClock) -> str:
    instance = Instance.register(
        organization_id=ORG,
        display_name="Sales",
        provider=Provider.WAHA,
        provider_instance_ref=f"sales-{new_id()}",
        phone="5511987654321",
        purposes=frozenset({Purpose.DISPATCH}),
        connection_state=ConnectionState.CONNECTED,
        now=clock.now(),
    )
    uow.instances.add(instance)
    uow.track(instance)
    await uow.commit()
    return instance.id


async def test_two_consumers_recording_facts_of_one_message_at_once_take_turns(
    migrated_database: Callable[[str], str],
):
    engine = create_engine(migrated_database("reputation_service"))
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))

    def uow() -> SqlAlchemyReputationUnitOfWork:
        return SqlAlchemyReputationUnitOfWork(
            session_factory(engine), tables=messaging, to_message=event_to_proto, clock=clock
        )

    try:
        async with uow() as registry:
            instance_id = await _registered(registry, clock)
        record = RecordSignalsHandler(clock)
        executor, providers = ExecutorEventSignals(record, clock), ProviderEventSignals(record, clock)
        message = "true_5511@c.us_3EB0RACE"
        delivered_at, sent_at = clock.now() - timedelta(seconds=1), clock.now() - timedelta(seconds=4)

        # The message is known already (its read receipt came first), so both find its row.
        async with uow() as earlier:
            await providers(
                reported(instance_id, PT.PROVIDER_EVENT_TYPE_MESSAGE_READ, clock.now(), message), earlier
            )
            await earlier.commit()

        async with uow() as first:
            await providers(
                reported(instance_id, PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, delivered_at, message), first
            )

            async def second_consumer() -> None:
                async with uow() as second:
                    await executor(sent(instance_id, message, sent_at, new_id()), second)
                    await second.commit()

            racing = asyncio.create_task(second_consumer())
            await asyncio.sleep(0.3)
            assert not racing.done()  # it waits for the message the first one holds
            await first.commit()
        await asyncio.wait_for(racing, timeout=5)

        reader = WindowCountsReader(
            clock, CountingPolicy(minute_horizon=timedelta(days=8), ack_timeout=timedelta(minutes=15))
        )
        async with uow() as work:
            [counts] = await reader(work, instance_id, [timedelta(hours=1)])
        assert (counts.sent, counts.delivered, counts.read, counts.avg_send_latency_ms) == (1, 1, 1, 3000)
    finally:
        await engine.dispose()
