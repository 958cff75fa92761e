"""Durable consumers of the reputation, ops and executor streams: projections in, SENT/FAILED in."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext

from gate_service.application.record_execution import (
    ExecutionReport,
    MessageFailedReport,
    MessageSentReport,
    RecordExecutionReports,
    RecordExecutionReportsHandler,
)
from gate_service.application.update_projections import ProjectionUpdater
from gate_service.domain.ports import ConsumerUnitOfWork
from gate_service.infrastructure.proto_mapping import (
    instance_state_from_proto,
    plan_from_proto,
    reputation_from_proto,
)
from libs.messaging.consumer import DurableConsumer, EventHandler, Redelivery
from libs.messaging.controls import control_from_event
from libs.rpc.convert import from_timestamp
from libs.stores import StoreOutages
from whatlead.events.v1 import executor_events_pb2, ops_events_pb2, reputation_events_pb2
from whatlead.executor.v1 import executor_pb2


class GateEventHandlers:
    def __init__(self, updater: ProjectionUpdater) -> None:
        self._updater = updater
        self.execution_reports = ExecutionReportHandler(RecordExecutionReportsHandler())

    async def instance_changed(
        self,
        event: reputation_events_pb2.InstanceRegistered | reputation_events_pb2.InstanceChanged,
        uow: ConsumerUnitOfWork,
    ) -> None:
        await self._updater.instance_changed(uow, instance_state_from_proto(event.instance))

    async def reputation_evaluated(
        self, event: reputation_events_pb2.ReputationEvaluated, uow: ConsumerUnitOfWork
    ) -> None:
        reputation = event.reputation
        await self._updater.reputation_evaluated(
            uow, reputation.instance_id, reputation_from_proto(reputation)
        )

    async def cooldown_started(
        self, event: reputation_events_pb2.CooldownStarted, uow: ConsumerUnitOfWork
    ) -> None:
        until = from_timestamp(event.cooldown_until, present=event.HasField("cooldown_until"))
        if until is not None:
            await self._updater.cooldown_started(uow, event.instance_id, until)

    async def control_changed(
        self, event: ops_events_pb2.ExecutionControlChanged, uow: ConsumerUnitOfWork
    ) -> None:
        control = control_from_event(event)
        if control is not None:
            await self._updater.control_changed(uow, control)

    async def plan_changed(self, event: ops_events_pb2.PlanChanged, uow: ConsumerUnitOfWork) -> None:
        await self._updater.plan_changed(uow, plan_from_proto(event.plan))


class ExecutionReportHandler:
    """The Executor's MessageSent and MessageFailed, one at a time or a fetched run of them at once (a
    libs.messaging BatchEventHandler): one read of their intents and one write of them all."""

    def __init__(self, record: RecordExecutionReportsHandler) -> None:
        self._record = record

    async def __call__(
        self,
        event: executor_events_pb2.MessageSent | executor_events_pb2.MessageFailed,
        uow: ConsumerUnitOfWork,
    ) -> None:
        await self.handle_many([event], uow)

    async def handle_many(
        self,
        events: Sequence[executor_events_pb2.MessageSent | executor_events_pb2.MessageFailed],
        uow: ConsumerUnitOfWork,
    ) -> None:
        await self._record(uow, RecordExecutionReports([_report(event) for event in events]))


def _report(event: executor_events_pb2.MessageSent | executor_events_pb2.MessageFailed) -> ExecutionReport:
    if isinstance(event, executor_events_pb2.MessageSent):
        return MessageSentReport(
            organization_id=event.meta.organization_id,
            intent_id=event.intent_id,
            instance_id=event.instance_id,
            job_id=event.job_id,
            provider_message_id=event.provider_message_id,
            sent_at=_first_time(event.sent_at, event.meta.occurred_at),
        )
    error = event.error
    return MessageFailedReport(
        organization_id=event.meta.organization_id,
        intent_id=event.intent_id,
        instance_id=event.instance_id,
        job_id=event.job_id,
        error_class=executor_pb2.ErrorClass.Name(error.error_class).removeprefix("ERROR_CLASS_"),
        error_code=error.code,
        error_message=error.message,
        failed_at=_first_time(event.failed_at, event.meta.occurred_at),
    )


def _first_time(*stamps: Timestamp) -> datetime:
    """The first of the timestamps that is set (the event's own time, else when it was published)."""
    for stamp in stamps:
        moment = from_timestamp(stamp)
        if moment is not None:
            return moment
    raise ValueError("the event carries no time")


def gate_consumers(
    *,
    js: JetStreamContext,
    subject_root: str,
    handlers: GateEventHandlers,
    uow_factory: Callable[[], ConsumerUnitOfWork],
    fetch_timeout: float = 1.0,
    durable_prefix: str = "gate",
    execution_reports_linger: float = 0.0,
    redelivery: Callable[[str], Redelivery] | None = None,
    outages: StoreOutages | None = None,
) -> list[DurableConsumer]:
    """`execution_reports_linger`: how long the consumer of the executor's MessageSent/MessageFailed keeps
    gathering after a fetch that did not fill its batch; the events then share one transaction. They
    are on no message's path (the message is already SENT), so at light load this trades a moment of
    the intent's SENT status for one commit and one ack round instead of one per message.
    `redelivery`: each consumer's ack wait and retries, by the context it reads (defaults otherwise);
    `outages`: the service's stores, told of an outage a consumer meets."""

    def consumer(
        context: str,
        handled: Mapping[type[Message], EventHandler],
        *,
        transaction_per_batch: bool = False,
        linger: float = 0.0,
    ) -> DurableConsumer:
        return DurableConsumer(
            service="gate",
            js=js,
            subject_root=subject_root,
            context=context,
            durable=f"{durable_prefix}-{context}",
            handlers=handled,
            uow_factory=uow_factory,
            fetch_timeout=fetch_timeout,
            redelivery=redelivery(context) if redelivery else Redelivery(),
            transaction_per_batch=transaction_per_batch,
            linger=linger,
            outages=outages,
        )

    return [
        consumer(
            "reputation",
            {
                reputation_events_pb2.InstanceRegistered: handlers.instance_changed,
                reputation_events_pb2.InstanceChanged: handlers.instance_changed,
                reputation_events_pb2.ReputationEvaluated: handlers.reputation_evaluated,
                reputation_events_pb2.CooldownStarted: handlers.cooldown_started,
            },
        ),
        consumer(
            "ops",
            {
                ops_events_pb2.ExecutionControlChanged: handlers.control_changed,
                ops_events_pb2.PlanChanged: handlers.plan_changed,
            },
        ),
        consumer(
            "executor",
            {
                executor_events_pb2.MessageSent: handlers.execution_reports,
                executor_events_pb2.MessageFailed: handlers.execution_reports,
            },
            transaction_per_batch=True,
            linger=execution_reports_linger,
        ),
    ]
