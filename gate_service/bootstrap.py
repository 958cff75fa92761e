"""Builds the gate service from its settings: the only place that knows every concrete class."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gate_service.application.decide import DecisionService
from gate_service.application.decide_intent import DecideIntentHandler
from gate_service.application.ports import RateStore
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
from gate_service.infrastructure.batching import BatchingGateUnitOfWork, GroupCommitWriter, IntentReader
from gate_service.infrastructure.memory_rate_store import InMemoryRateStore
from gate_service.infrastructure.projection_loader import load_projections
from gate_service.infrastructure.proto_mapping import event_to_proto
from gate_service.infrastructure.rebuild_sources import GrpcControlSource, GrpcInstanceStateSource
from gate_service.infrastructure.tables import messaging
from gate_service.infrastructure.unit_of_work import SqlAlchemyGateUnitOfWork
from gate_service.infrastructure.wakeup import DebouncedWake
from libs.bootstrap import open_infrastructure
from libs.rpc.client import open_channel
from libs.rpc.server import ServicerBinding
from libs.runtime import ServiceParts
from libs.seedwork.clock import Clock, SystemClock
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc

SERVICE = "gate"


@dataclass
class GateApp:
    """Everything built, for tests that drive the parts directly."""

    parts: ServiceParts
    projection: GateProjection
    decider: DecisionService
    release_due: ReleaseDueIntentsHandler
    consumers: list
    rebuilds: list[StartupRebuild]


async def build(settings: GateSettings, *, clock: Clock | None = None) -> ServiceParts:
    return (await build_app(settings, clock=clock)).parts


async def build_app(settings: GateSettings, *, clock: Clock | None = None) -> GateApp:
    clock = clock or SystemClock()
    infra = await open_infrastructure(SERVICE, settings, messaging, clock)
    policies = settings.policies()
    projection = GateProjection(policies)
    await load_projections(infra.sessions, projection, clock.now())

    redis = None
    rates: RateStore
    if settings.redis_url:
        from redis.asyncio import Redis

        from gate_service.infrastructure.redis_rate_store import RedisRateStore

        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
        rates = RedisRateStore(redis, prefix=settings.redis_key_prefix)
    else:
        rates = InMemoryRateStore()

    def uow() -> SqlAlchemyGateUnitOfWork:
        return SqlAlchemyGateUnitOfWork(
            infra.sessions,
            tables=messaging,
            to_message=event_to_proto,
            clock=clock,
            on_commit=infra.relay.wake,
        )

    writer = GroupCommitWriter(
        infra.engine,
        tables=messaging,
        to_message=event_to_proto,
        clock=clock,
        on_commit=DebouncedWake(infra.relay.wake, settings.relay_wake_delay_seconds),
        max_batch=settings.write_batch_size,
    )
    reader = IntentReader(infra.sessions)

    def batched() -> BatchingGateUnitOfWork:
        return BatchingGateUnitOfWork(writer, reader)

    decider = DecisionService(DispatchGate(policies), projection, rates, clock)
    validity = {
        "default_validity": timedelta(seconds=settings.default_validity_seconds),
        "max_validity": timedelta(seconds=settings.max_validity_seconds),
    }
    servicer = GateServicer(
        submit_intent=SubmitIntentHandler(batched, decider, clock, decide=True, **validity),  # type: ignore[arg-type]
        create_intent=SubmitIntentHandler(batched, decider, clock, decide=False, **validity),  # type: ignore[arg-type]
        decide_intent=DecideIntentHandler(batched, decider),  # type: ignore[arg-type]
        get_intent=GetIntentHandler(batched),  # type: ignore[arg-type]
        list_intents=ListIntentsHandler(uow),
    )
    binding = ServicerBinding(
        servicer,
        gate_pb2_grpc.add_GateServiceServicer_to_server,
        gate_pb2.DESCRIPTOR.services_by_name["GateService"].full_name,
    )
    updater = ProjectionUpdater(projection, clock)
    consumers = gate_consumers(
        js=infra.js,
        subject_root=settings.subject_root,
        handlers=GateEventHandlers(updater),
        uow_factory=uow,
        durable_prefix=settings.consumer_durable_prefix,
    )
    release_due = ReleaseDueIntentsHandler(uow, decider, batch_size=settings.scheduler_batch_size)
    scheduler = QueuedIntentScheduler(
        release_due, interval=settings.scheduler_interval_seconds, batch_size=settings.scheduler_batch_size
    )
    refresher = ProjectionRefresher(
        lambda since: load_projections(infra.sessions, projection, clock.now(), since),
        clock.now,
        interval=settings.projection_refresh_seconds,
    )
    rebuild = RebuildProjectionsHandler(uow, updater)
    channels = []
    rebuilds = []
    if settings.reputation_addr:
        channel = open_channel(settings.reputation_addr, default_deadline=settings.rebuild_deadline_seconds)
        channels.append(channel)
        source = GrpcInstanceStateSource(channel)
        rebuilds.append(StartupRebuild("reputation", lambda: rebuild.from_instances(source)))
    if settings.ops_addr:
        ops_channel = open_channel(settings.ops_addr, default_deadline=settings.rebuild_deadline_seconds)
        channels.append(ops_channel)
        ops_source = GrpcControlSource(ops_channel)
        rebuilds.append(StartupRebuild("ops", lambda: rebuild.from_ops(ops_source)))

    async def close() -> None:
        for channel in channels:
            await channel.close()
        if redis is not None:
            await redis.aclose()
        await writer.close()
        await infra.close()

    parts = ServiceParts(
        bindings=[binding],
        workers=[
            infra.relay.run,
            *(consumer.run for consumer in consumers),
            scheduler.run,
            refresher.run,
            *(r.run for r in rebuilds),
        ],
        close=close,
    )
    return GateApp(parts, projection, decider, release_due, consumers, rebuilds)
