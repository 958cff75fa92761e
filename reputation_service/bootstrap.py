"""Builds the reputation service from its settings: the only place that knows every concrete class."""

from __future__ import annotations

from libs.bootstrap import open_infrastructure
from libs.rpc.server import ServicerBinding
from libs.runtime import ServiceParts
from libs.seedwork.clock import Clock, SystemClock
from reputation_service.application.queries import (
    GetInstanceHandler,
    ListInstancesHandler,
    ListInstanceStatesHandler,
)
from reputation_service.application.register_instance import RegisterInstanceHandler
from reputation_service.application.update_instance import UpdateInstanceHandler
from reputation_service.config import ReputationSettings
from reputation_service.entrypoints.grpc_servicer import ReputationServicer
from reputation_service.infrastructure.proto_mapping import event_to_proto
from reputation_service.infrastructure.tables import messaging
from reputation_service.infrastructure.unit_of_work import SqlAlchemyReputationUnitOfWork
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

SERVICE = "reputation"


async def build(settings: ReputationSettings, *, clock: Clock | None = None) -> ServiceParts:
    clock = clock or SystemClock()
    infra = await open_infrastructure(SERVICE, settings, messaging, clock, database_holds="instances")

    def uow() -> SqlAlchemyReputationUnitOfWork:
        return SqlAlchemyReputationUnitOfWork(
            infra.sessions,
            tables=messaging,
            to_message=event_to_proto,
            clock=clock,
            on_commit=infra.relay.wake,
        )

    servicer = ReputationServicer(
        register_instance=RegisterInstanceHandler(uow, clock),
        update_instance=UpdateInstanceHandler(uow, clock),
        get_instance=GetInstanceHandler(uow),
        list_instances=ListInstancesHandler(uow),
        list_instance_states=ListInstanceStatesHandler(uow),
    )
    binding = ServicerBinding(
        servicer,
        reputation_pb2_grpc.add_ReputationServiceServicer_to_server,
        reputation_pb2.DESCRIPTOR.services_by_name["ReputationService"].full_name,
    )
    return ServiceParts(
        bindings=[binding],
        workers=[infra.outages.watch, infra.relay.run],
        close=infra.close,
        outages=infra.outages,
    )
