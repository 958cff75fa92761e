"""Builds the ops service from its settings: the only place that knows every concrete class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from libs.bootstrap import Infrastructure, open_infrastructure
from libs.messaging.consumer import DurableConsumer, Redelivery
from libs.rpc.server import ServicerBinding
from libs.runtime import ServiceParts, Worker
from libs.seedwork.clock import Clock, SystemClock
from ops_service.application.execution_metrics import GetExecutionMetricsHandler, GetInstanceMetricsHandler
from ops_service.application.intent_timeline import GetIntentTimelineHandler
from ops_service.application.record_facts import RecordFactsHandler
from ops_service.config import OpsSettings
from ops_service.entrypoints import audit_consumers
from ops_service.entrypoints.audit_rpcs import AuditRpcs
from ops_service.entrypoints.grpc_servicer import OpsServicer
from ops_service.infrastructure.audit_unit_of_work import SqlAlchemyAuditUnitOfWork
from ops_service.infrastructure.proto_mapping import event_to_proto
from ops_service.infrastructure.tables import messaging
from ops_service.infrastructure.unit_of_work import SqlAlchemyOpsUnitOfWork
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

SERVICE = "ops"
# Nothing waits on the audit log: a few events per transaction on a quiet stream.
AUDIT_LINGER_SECONDS = 0.1


@dataclass
class Ops:
    """Every part of a running ops service, for the runtime and for tests that drive pieces."""

    infra: Infrastructure
    servicer: OpsServicer
    unit_of_work: Callable[[], SqlAlchemyOpsUnitOfWork]
    # Event consumers and periodic passes: each part of the service adds its own.
    consumers: list[DurableConsumer] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)

    def parts(self) -> ServiceParts:
        binding = ServicerBinding(
            self.servicer,
            ops_pb2_grpc.add_OpsServiceServicer_to_server,
            ops_pb2.DESCRIPTOR.services_by_name["OpsService"].full_name,
        )
        loops: list[Worker] = [self.infra.outages.watch, self.infra.relay.run]
        loops += [consumer.run for consumer in self.consumers]
        loops += self.workers
        return ServiceParts(
            bindings=[binding], workers=loops, close=self.infra.close, outages=self.infra.outages
        )


async def assemble(settings: OpsSettings, *, clock: Clock | None = None) -> Ops:
    clock = clock or SystemClock()
    infra = await open_infrastructure(SERVICE, settings, messaging, clock, database_holds="operations")

    def uow() -> SqlAlchemyOpsUnitOfWork:
        return SqlAlchemyOpsUnitOfWork(
            infra.sessions,
            tables=messaging,
            to_message=event_to_proto,
            clock=clock,
            on_commit=infra.relay.wake,
        )

    def audit_uow() -> SqlAlchemyAuditUnitOfWork:
        return SqlAlchemyAuditUnitOfWork(
            infra.sessions, tables=messaging, to_message=event_to_proto, clock=clock
        )

    servicer = OpsServicer(
        audit=AuditRpcs(
            get_intent_timeline=GetIntentTimelineHandler(audit_uow),
            get_execution_metrics=GetExecutionMetricsHandler(audit_uow, clock),
            get_instance_metrics=GetInstanceMetricsHandler(audit_uow, clock),
        )
    )
    ops = Ops(infra, servicer, uow)
    # The audit timeline and the metrics: every event of every context, a batch per transaction.
    facts = audit_consumers.AuditFacts(RecordFactsHandler())
    for context in audit_consumers.contexts():
        ops.consumers.append(
            DurableConsumer(
                service=SERVICE,
                js=infra.js,
                subject_root=settings.subject_root,
                context=context,
                durable=audit_consumers.DURABLE_PREFIX + context,
                handlers=audit_consumers.handlers(context, facts),
                uow_factory=audit_uow,
                batch_size=settings.audit_batch_size,
                redelivery=Redelivery.of(settings, context),
                transaction_per_batch=True,
                linger=AUDIT_LINGER_SECONDS,
                outages=infra.outages,
            )
        )
    return ops


async def build(settings: OpsSettings, *, clock: Clock | None = None) -> ServiceParts:
    return (await assemble(settings, clock=clock)).parts()
