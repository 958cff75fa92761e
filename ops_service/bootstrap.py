"""Builds the ops service from its settings: the only place that knows every concrete class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from libs.bootstrap import Infrastructure, open_infrastructure
from libs.messaging.consumer import DurableConsumer, Redelivery
from libs.messaging.key_directory import ensure_key_directory
from libs.periodic import PeriodicGauges
from libs.rpc.server import ServicerBinding
from libs.runtime import ServiceParts, Worker
from libs.seedwork.api_keys import issue_key
from libs.seedwork.clock import Clock, SystemClock
from ops_service.application.api_keys import (
    CreateApiKeyHandler,
    ListApiKeysHandler,
    PublishKeyRecordHandler,
    ResolveApiKeyHandler,
    RevokeApiKeyHandler,
)
from ops_service.application.audit import ListAuditEntriesHandler
from ops_service.application.controls import (
    ExpirePausesHandler,
    ListControlsHandler,
    ListPausedControlsHandler,
    PauseExecutionHandler,
    ResumeExecutionHandler,
)
from ops_service.application.execution_metrics import GetExecutionMetricsHandler, GetInstanceMetricsHandler
from ops_service.application.intent_timeline import GetIntentTimelineHandler
from ops_service.application.organizations import (
    AddMemberHandler,
    CreateOrganizationHandler,
    GetOrganizationHandler,
    ListMembersHandler,
)
from ops_service.application.plans import GetPlanHandler, ListPlansHandler, SetPlanHandler
from ops_service.application.ports import KeyIssuer
from ops_service.application.prune_timeline import PruneTimelineHandler, Retention
from ops_service.application.record_facts import RecordFactsHandler
from ops_service.config import OpsSettings
from ops_service.entrypoints import timeline_consumers
from ops_service.entrypoints.consumers import KeyDirectoryWriter
from ops_service.entrypoints.grpc_servicer import OpsHandlers, OpsServicer
from ops_service.entrypoints.timeline_rpcs import TimelineRpcs
from ops_service.entrypoints.watch_intents import IntentWatch
from ops_service.entrypoints.workers import PauseExpirer, TimelinePruner
from ops_service.infrastructure import metrics
from ops_service.infrastructure.intent_stream import intent_hub
from ops_service.infrastructure.key_directory import JetStreamKeyDirectory
from ops_service.infrastructure.proto_mapping import event_to_proto
from ops_service.infrastructure.tables import messaging
from ops_service.infrastructure.timeline_unit_of_work import SqlAlchemyTimelineUnitOfWork
from ops_service.infrastructure.unit_of_work import SqlAlchemyOpsUnitOfWork
from whatlead.events.v1 import ops_events_pb2
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

SERVICE = "ops"
# How long a pause or resume waits to be on the bus before answering anyway (NATS away: the outbox
# relay delivers it when NATS is back).
PUBLISH_WAIT_SECONDS = 1.0
# Nothing waits on the timeline: a few events per transaction on a quiet stream.
TIMELINE_LINGER_SECONDS = 0.1


@dataclass
class Ops:
    """Every part of a running ops service, for the runtime and for tests that drive pieces."""

    infra: Infrastructure
    servicer: OpsServicer
    unit_of_work: Callable[[], SqlAlchemyOpsUnitOfWork]
    # Event consumers and periodic passes: each part of the service adds its own.
    consumers: list[DurableConsumer] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    gauges: list[PeriodicGauges] = field(default_factory=list)  # among the workers; for tests to read once

    def parts(self) -> ServiceParts:
        binding = ServicerBinding(
            self.servicer,
            ops_pb2_grpc.add_OpsServiceServicer_to_server,
            ops_pb2.DESCRIPTOR.services_by_name["OpsService"].full_name,
        )
        loops: list[Worker] = [consumer.run for consumer in self.consumers]
        loops += self.workers
        return self.infra.parts([binding], loops, self.infra.close)


async def assemble(settings: OpsSettings, *, clock: Clock | None = None, issue: KeyIssuer = issue_key) -> Ops:
    clock = clock or SystemClock()
    infra = await open_infrastructure(SERVICE, settings, messaging, clock, database_holds="operations")

    def uow() -> SqlAlchemyOpsUnitOfWork:
        # Every commit with events wakes the relay: a pause is on its way within milliseconds.
        return SqlAlchemyOpsUnitOfWork(
            infra.sessions,
            tables=messaging,
            to_message=event_to_proto,
            clock=clock,
            on_commit=infra.relay.wake,
        )

    def timeline_uow() -> SqlAlchemyTimelineUnitOfWork:
        # A batch that made intent changes wakes the relay: watchers see them within milliseconds.
        return SqlAlchemyTimelineUnitOfWork(
            infra.sessions,
            tables=messaging,
            to_message=event_to_proto,
            clock=clock,
            on_commit=infra.relay.wake,
        )

    # The live stream of intent changes: one ordered consumer of every organization's changes per process.
    hub = intent_hub(infra.js, settings.subject_root, ring_size=settings.watch_ring)
    directory = JetStreamKeyDirectory(await ensure_key_directory(infra.js, settings.subject_root))
    servicer = OpsServicer(
        OpsHandlers(
            create_organization=CreateOrganizationHandler(uow, clock),
            get_organization=GetOrganizationHandler(uow),
            add_member=AddMemberHandler(uow, clock),
            list_members=ListMembersHandler(uow),
            create_api_key=CreateApiKeyHandler(uow, clock, issue, directory),
            revoke_api_key=RevokeApiKeyHandler(uow, clock, directory),
            list_api_keys=ListApiKeysHandler(uow),
            resolve_api_key=ResolveApiKeyHandler(uow),
            pause=PauseExecutionHandler(uow, clock),
            resume=ResumeExecutionHandler(uow, clock),
            list_controls=ListControlsHandler(uow),
            list_paused_controls=ListPausedControlsHandler(uow),
            get_plan=GetPlanHandler(uow),
            set_plan=SetPlanHandler(uow, clock),
            list_plans=ListPlansHandler(uow),
            list_audit_entries=ListAuditEntriesHandler(uow),
        ),
        TimelineRpcs(
            get_intent_timeline=GetIntentTimelineHandler(timeline_uow),
            get_execution_metrics=GetExecutionMetricsHandler(timeline_uow, clock),
            get_instance_metrics=GetInstanceMetricsHandler(timeline_uow, clock),
        ),
        IntentWatch(hub, buffer=settings.watch_buffer),
        # A pause answers once it is on the bus: every Executor hears it as the operator gets the answer.
        published=lambda: infra.relay.flushed(timeout=PUBLISH_WAIT_SECONDS),
    )
    ops = Ops(infra, servicer, uow)
    ops.workers.append(hub.run)
    # The intent timeline and the execution metrics: every event of every context, a batch per transaction.
    facts = timeline_consumers.TimelineFacts(RecordFactsHandler())
    for context in timeline_consumers.contexts():
        ops.consumers.append(
            DurableConsumer(
                service=SERVICE,
                js=infra.js,
                subject_root=settings.subject_root,
                context=context,
                durable=timeline_consumers.DURABLE_PREFIX + context,
                handlers=timeline_consumers.handlers(context, facts),
                uow_factory=timeline_uow,
                batch_size=settings.timeline_batch_size,
                redelivery=Redelivery.of(settings, context),
                transaction_per_batch=True,
                linger=TIMELINE_LINGER_SECONDS,
                outages=infra.outages,
            )
        )

    def consumer(context: str, durable: str, handlers: dict[type[Any], Any]) -> DurableConsumer:
        return DurableConsumer(
            service=SERVICE,
            js=infra.js,
            subject_root=settings.subject_root,
            context=context,
            durable=durable,
            handlers=handlers,
            uow_factory=uow,
            redelivery=Redelivery.of(settings, context),
            outages=infra.outages,
        )

    writer = KeyDirectoryWriter(PublishKeyRecordHandler(directory))
    ops.consumers.append(
        consumer(
            "ops",
            "ops-key-directory",
            {ops_events_pb2.ApiKeyCreated: writer, ops_events_pb2.ApiKeyRevoked: writer},
        )
    )
    expirer = PauseExpirer(
        ExpirePausesHandler(uow, clock),
        interval=settings.expiry_interval_seconds,
        batch_size=settings.expiry_batch_size,
        outages=infra.outages,
    )
    ops.workers.append(expirer.run)
    retention = Retention(
        events=timedelta(days=settings.timeline_retention_days),
        minute_buckets=timedelta(hours=settings.minute_counters_retention_hours),
        hour_buckets=timedelta(days=settings.hour_counters_retention_days),
    )
    pruner = TimelinePruner(
        PruneTimelineHandler(timeline_uow, clock, retention),
        interval=settings.prune_interval_seconds,
        batch_size=settings.prune_batch_size,
        outages=infra.outages,
    )
    ops.workers.append(pruner.run)
    pauses = PeriodicGauges(
        "pauses in force count",
        lambda: metrics.report_pauses(infra.sessions, clock.now()),
        every=settings.gauges_interval_seconds,
        outages=infra.outages,
    )
    ops.gauges.append(pauses)
    ops.workers.append(pauses.run)
    return ops


async def build(
    settings: OpsSettings, *, clock: Clock | None = None, issue: KeyIssuer = issue_key
) -> ServiceParts:
    return (await assemble(settings, clock=clock, issue=issue)).parts()
