"""Builds the gate service from its settings: the only place that knows every concrete class."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import grpc
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from gate_service.application.create_intent import CreateIntentHandler
from gate_service.application.decide import DecisionService
from gate_service.application.decide_awaiting_intents import DecideAwaitingIntentsHandler
from gate_service.application.decide_intent import DecideIntentHandler
from gate_service.application.intent_creation import IdempotentIntentStore
from gate_service.application.queries import GetIntentHandler, ListIntentsHandler
from gate_service.application.release_due_intents import ReleaseDueIntentsHandler
from gate_service.application.submit_intent import SubmitIntentHandler
from gate_service.application.update_projections import ProjectionUpdater, RebuildProjectionsHandler
from gate_service.config import GateSettings
from gate_service.domain.gate import DispatchGate
from gate_service.domain.projection import GateProjection
from gate_service.entrypoints.consumers import GateEventHandlers, gate_consumers
from gate_service.entrypoints.grpc_servicer import GateServicer
from gate_service.entrypoints.workers import ProjectionRefresher, QueuedIntentScheduler, StartupRebuild
from gate_service.infrastructure import metrics
from gate_service.infrastructure.batching import BatchingGateUnitOfWork, GroupCommitWriter, IntentReader
from gate_service.infrastructure.projection_loader import load_projections
from gate_service.infrastructure.proto_mapping import event_to_proto
from gate_service.infrastructure.rebuild_sources import GrpcControlSource, GrpcInstanceStateSource
from gate_service.infrastructure.recent_keys import BoundedRecentIntentKeys
from gate_service.infrastructure.redis_rate_store import RedisRateStore
from gate_service.infrastructure.sent_history import SqlAlchemySentHistory
from gate_service.infrastructure.tables import messaging
from gate_service.infrastructure.traced_decisions import TracedDecisionService
from gate_service.infrastructure.unit_of_work import SqlAlchemyGateUnitOfWork
from gate_service.infrastructure.wakeup import DebouncedWake
from libs.bootstrap import Infrastructure, open_infrastructure
from libs.messaging.consumer import DurableConsumer, Redelivery
from libs.periodic import PeriodicGauges
from libs.rpc.client import open_channel
from libs.rpc.server import ServicerBinding
from libs.runtime import ServiceParts
from libs.seedwork.clock import Clock, SystemClock
from libs.stores import Store, StoreKind, redis_probe
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc

SERVICE = "gate"
# Redis connections of one Gate process: its scripts travel batched on a few; the rest is headroom.
REDIS_CONNECTIONS = 128


@dataclass
class Gate:
    """Every part of a running gate, for the runtime and for tests that drive pieces directly."""

    infra: Infrastructure
    redis: Redis
    writer: GroupCommitWriter
    servicer: GateServicer
    projection: GateProjection
    decider: DecisionService
    scheduler: QueuedIntentScheduler
    refresher: ProjectionRefresher
    consumers: list[DurableConsumer]
    rebuilds: list[StartupRebuild]
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    gauges: list[PeriodicGauges] = field(default_factory=list)

    def parts(self) -> ServiceParts:
        binding = ServicerBinding(
            self.servicer,
            gate_pb2_grpc.add_GateServiceServicer_to_server,
            gate_pb2.DESCRIPTOR.services_by_name["GateService"].full_name,
        )
        return self.infra.parts(
            [binding],
            [
                self.scheduler.run,
                self.refresher.run,
                *(consumer.run for consumer in self.consumers),
                *(rebuild.run for rebuild in self.rebuilds),
                *(gauges.run for gauges in self.gauges),
            ],
            self.close,
        )

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
        await self.redis.aclose()
        await self.writer.close()
        await self.infra.close()


async def assemble(settings: GateSettings, *, clock: Clock | None = None) -> Gate:
    clock = clock or SystemClock()
    infra = await open_infrastructure(SERVICE, settings, messaging, clock, database_holds="intents")
    policies = settings.policies()
    projection = GateProjection(policies)
    await load_projections(infra.sessions, projection, clock.now())
    # A pooled connection to a Redis that restarted fails on its first use, before the server ran anything:
    # one immediate retry on a new connection, so a recovered Redis is not reported down again. A burst of
    # calls beyond the pool (releases are one command each) waits for a connection instead of failing.
    redis = Redis.from_pool(
        BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=REDIS_CONNECTIONS,
            timeout=5,
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError],
        )
    )
    infra.outages.add(Store(StoreKind.REDIS, holds="rate windows", probe=redis_probe(redis)))
    history = SqlAlchemySentHistory(
        infra.sessions,
        clock,
        max_validity=timedelta(seconds=settings.max_validity_seconds),
        contact_memory=policies.contact.min_gap,
    )
    rates = RedisRateStore(
        redis,
        prefix=settings.redis_key_prefix,
        history=history,
        settle=timedelta(seconds=settings.rate_rebuild_settle_seconds),
    )

    # One debounced wake-up for every commit that writes events (decisions, releases, execution reports):
    # at light load a relay pass then carries the events of several commits.
    relay_wake = DebouncedWake(infra.relay.wake, settings.relay_wake_delay_seconds)

    def uow() -> SqlAlchemyGateUnitOfWork:
        return SqlAlchemyGateUnitOfWork(
            infra.sessions,
            tables=messaging,
            to_message=event_to_proto,
            clock=clock,
            on_commit=relay_wake,
        )

    writer = GroupCommitWriter(
        infra.engine,
        tables=messaging,
        to_message=event_to_proto,
        clock=clock,
        on_commit=relay_wake,
        max_batch=settings.write_batch_size,
    )
    reader = IntentReader(infra.sessions, clock)

    def batched() -> BatchingGateUnitOfWork:
        return BatchingGateUnitOfWork(writer, reader)

    decider = TracedDecisionService(DispatchGate(policies), projection, rates, clock)  # a span when traced
    recent_keys = BoundedRecentIntentKeys()

    def intent_store() -> IdempotentIntentStore:
        return IdempotentIntentStore(
            batched,
            recent_keys,
            clock,
            default_validity=timedelta(seconds=settings.default_validity_seconds),
            max_validity=timedelta(seconds=settings.max_validity_seconds),
        )

    servicer = GateServicer(
        submit_intent=SubmitIntentHandler(intent_store(), decider),
        create_intent=CreateIntentHandler(intent_store()),
        decide_intent=DecideIntentHandler(batched, decider),
        get_intent=GetIntentHandler(batched),
        list_intents=ListIntentsHandler(uow),
    )
    scheduler = QueuedIntentScheduler(
        ReleaseDueIntentsHandler(uow, decider),
        DecideAwaitingIntentsHandler(uow, decider),
        interval=settings.scheduler_interval_seconds,
        batch_size=settings.scheduler_batch_size,
        outages=infra.outages,
    )
    updater = ProjectionUpdater(projection, clock, arrivals=scheduler)
    consumers = gate_consumers(
        js=infra.js,
        subject_root=settings.subject_root,
        handlers=GateEventHandlers(updater),
        uow_factory=uow,
        durable_prefix=settings.consumer_durable_prefix,
        execution_reports_linger=settings.execution_reports_linger_seconds,
        redelivery=lambda context: Redelivery.of(settings, context),
        outages=infra.outages,
    )
    refresher = ProjectionRefresher(
        lambda since: load_projections(infra.sessions, projection, clock.now(), since, scheduler),
        clock.now,
        interval=settings.projection_refresh_seconds,
        outages=infra.outages,
    )
    rebuild = RebuildProjectionsHandler(uow, updater)
    gate = Gate(infra, redis, writer, servicer, projection, decider, scheduler, refresher, consumers, [])

    async def count_queue() -> None:
        metrics.QUEUED_INTENTS.set(await metrics.count_queued_intents(infra.sessions))

    gate.gauges.append(
        PeriodicGauges(
            "queued intents count", count_queue, every=settings.gauges_interval_seconds, outages=infra.outages
        )
    )
    if settings.reputation_addr:
        channel = open_channel(
            settings.reputation_addr,
            default_deadline=settings.rebuild_deadline_seconds,
            credential=settings.service_credential(),
        )
        gate.channels.append(channel)
        source = GrpcInstanceStateSource(channel)
        gate.rebuilds.append(
            StartupRebuild("reputation", lambda: rebuild.from_instances(source), outages=infra.outages)
        )
    if settings.ops_addr:
        ops_channel = open_channel(
            settings.ops_addr,
            default_deadline=settings.rebuild_deadline_seconds,
            credential=settings.service_credential(),
        )
        gate.channels.append(ops_channel)
        ops_source = GrpcControlSource(ops_channel)
        gate.rebuilds.append(
            StartupRebuild("ops", lambda: rebuild.from_ops(ops_source), outages=infra.outages)
        )
    return gate


async def build(settings: GateSettings, *, clock: Clock | None = None) -> ServiceParts:
    return (await assemble(settings, clock=clock)).parts()
