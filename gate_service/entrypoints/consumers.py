"""Durable consumers of the reputation, ops and executor streams: projections in, SENT/FAILED in."""

from __future__ import annotations

from collections.abc import Callable

from nats.js import JetStreamContext

from gate_service.application.record_execution import record_message_failed, record_message_sent
from gate_service.application.update_projections import ProjectionUpdater
from gate_service.infrastructure.proto_mapping import (
    control_from_proto,
    instance_state_from_proto,
    plan_from_proto,
    reputation_fields,
)
from gate_service.infrastructure.unit_of_work import SqlAlchemyGateUnitOfWork
from libs.messaging.consumer import DurableConsumer
from libs.rpc.convert import from_timestamp
from whatlead.events.v1 import executor_events_pb2, ops_events_pb2, reputation_events_pb2
from whatlead.executor.v1 import executor_pb2


class GateEventHandlers:
    def __init__(self, updater: ProjectionUpdater) -> None:
        self._updater = updater

    async def instance_changed(self, event, uow: SqlAlchemyGateUnitOfWork) -> None:  # type: ignore[no-untyped-def]
        await self._updater.instance_changed(uow, instance_state_from_proto(event.instance))

    async def reputation_evaluated(
        self, event: reputation_events_pb2.ReputationEvaluated, uow: SqlAlchemyGateUnitOfWork
    ) -> None:
        reputation = event.reputation
        await self._updater.reputation_evaluated(uow, reputation.instance_id, **reputation_fields(reputation))  # type: ignore[arg-type]

    async def cooldown_started(
        self, event: reputation_events_pb2.CooldownStarted, uow: SqlAlchemyGateUnitOfWork
    ) -> None:
        until = from_timestamp(event.cooldown_until, present=event.HasField("cooldown_until"))
        if until is not None:
            await self._updater.cooldown_started(uow, event.instance_id, until)

    async def control_changed(
        self, event: ops_events_pb2.ExecutionControlChanged, uow: SqlAlchemyGateUnitOfWork
    ) -> None:
        control = control_from_proto(event.control)
        if control is not None:
            await self._updater.control_changed(uow, control)

    async def plan_changed(self, event: ops_events_pb2.PlanChanged, uow: SqlAlchemyGateUnitOfWork) -> None:
        await self._updater.plan_changed(uow, plan_from_proto(event.plan))

    async def message_sent(
        self, event: executor_events_pb2.MessageSent, uow: SqlAlchemyGateUnitOfWork
    ) -> None:
        await record_message_sent(
            uow,
            organization_id=event.meta.organization_id,
            intent_id=event.intent_id,
            instance_id=event.instance_id,
            job_id=event.job_id,
            provider_message_id=event.provider_message_id,
            sent_at=from_timestamp(event.sent_at) or from_timestamp(event.meta.occurred_at),  # type: ignore[arg-type]
        )

    async def message_failed(
        self, event: executor_events_pb2.MessageFailed, uow: SqlAlchemyGateUnitOfWork
    ) -> None:
        error = event.error
        await record_message_failed(
            uow,
            organization_id=event.meta.organization_id,
            intent_id=event.intent_id,
            instance_id=event.instance_id,
            job_id=event.job_id,
            error_class=executor_pb2.ErrorClass.Name(error.error_class).removeprefix("ERROR_CLASS_"),
            error_code=error.code,
            error_message=error.message,
            failed_at=from_timestamp(event.failed_at) or from_timestamp(event.meta.occurred_at),  # type: ignore[arg-type]
        )


def gate_consumers(
    *,
    js: JetStreamContext,
    subject_root: str,
    handlers: GateEventHandlers,
    uow_factory: Callable[[], SqlAlchemyGateUnitOfWork],
    fetch_timeout: float = 1.0,
    durable_prefix: str = "gate",
) -> list[DurableConsumer]:
    common = dict(
        service="gate", js=js, subject_root=subject_root, uow_factory=uow_factory, fetch_timeout=fetch_timeout
    )
    return [
        DurableConsumer(
            context="reputation",
            durable=f"{durable_prefix}-reputation",
            handlers={
                reputation_events_pb2.InstanceRegistered: handlers.instance_changed,
                reputation_events_pb2.InstanceChanged: handlers.instance_changed,
                reputation_events_pb2.ReputationEvaluated: handlers.reputation_evaluated,
                reputation_events_pb2.CooldownStarted: handlers.cooldown_started,
            },
            **common,  # type: ignore[arg-type]
        ),
        DurableConsumer(
            context="ops",
            durable=f"{durable_prefix}-ops",
            handlers={
                ops_events_pb2.ExecutionControlChanged: handlers.control_changed,
                ops_events_pb2.PlanChanged: handlers.plan_changed,
            },
            **common,  # type: ignore[arg-type]
        ),
        DurableConsumer(
            context="executor",
            durable=f"{durable_prefix}-executor",
            handlers={
                executor_events_pb2.MessageSent: handlers.message_sent,
                executor_events_pb2.MessageFailed: handlers.message_failed,
            },
            **common,  # type: ignore[arg-type]
        ),
    ]
