"""Event consumers: approved intents become jobs; ops' controls feed the kill-switch; provider events
become delivery progress. Each handler runs inside the consumer's transaction (with its inbox row)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import partial

from executor_service.application.apply_control import ApplyControlChange, ApplyControlChangeHandler
from executor_service.application.claim_jobs import Claim, ClaimNewJobs, ClaimNewJobsHandler
from executor_service.application.create_job import CreateExecutionJob, CreateExecutionJobHandler
from executor_service.application.record_provider_event import (
    RecordProviderReport,
    RecordProviderReportHandler,
    ReportedStatus,
)
from executor_service.domain.job import MessageExecutionJob
from executor_service.domain.ports import ExecutorUnitOfWork
from executor_service.entrypoints.workers import IdleWorkers, Reservation
from executor_service.infrastructure import metrics
from executor_service.infrastructure.proto_mapping import create_job_command
from libs.messaging.controls import control_from_event
from libs.rpc.convert import enum_from_proto, from_timestamp
from libs.seedwork.clock import Clock
from libs.seedwork.ids import is_valid_id
from libs.seedwork.shared_kernel import Provider
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import gate_events_pb2, ops_events_pb2, provider_events_pb2

log = logging.getLogger(__name__)

_REPORTED = {
    provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_SENT: ReportedStatus.SERVER_ACK,
    provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED: ReportedStatus.DELIVERED,
    provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_READ: ReportedStatus.READ,
}
# Our chosen ids ("3EB0" + 16 hex, see libs.providers.new_client_message_id) travel inside the provider's
# ids: as is (wuzapi) or serialized as "true_<chat>_<id>" (WAHA).
_CLIENT_ID = re.compile(r"(?:^|_)(3EB0[0-9A-F]{16})$")


class IntentApprovedConsumer:
    """Approved intents become jobs. When workers of this process are idle, the new jobs are claimed for
    them in the same transaction and handed over when it commits: no wake-up, no claim of their own."""

    def __init__(
        self,
        create: CreateExecutionJobHandler,
        *,
        claim_new: ClaimNewJobsHandler,
        idle: IdleWorkers,
        batch_size: int,
    ) -> None:
        self._create = create
        self._claim_new = claim_new
        self._idle = idle
        self._batch_size = batch_size

    async def __call__(self, event: gate_events_pb2.IntentApproved, uow: ExecutorUnitOfWork) -> None:
        await self.handle_many([event], uow)

    async def handle_many(
        self, events: Sequence[gate_events_pb2.IntentApproved], uow: ExecutorUnitOfWork
    ) -> None:
        commands = [command for event in events if (command := _create_command(event)) is not None]
        if commands:
            created = await self._create.create_many(uow, commands)
            metrics.JOBS_CREATED.inc(len(created))
            self._hand_over(uow, created)

    def _hand_over(self, uow: ExecutorUnitOfWork, jobs: Sequence[MessageExecutionJob]) -> None:
        for start in range(0, len(jobs), self._batch_size):
            reservation = self._idle.reserve()
            if reservation is None:
                return  # the rest stays PENDING; the commit rings for it
            claim = self._claim_new(uow, ClaimNewJobs(tuple(jobs[start : start + self._batch_size])))
            uow.after_transaction(partial(_hand_over_if_committed, reservation, claim))


def _hand_over_if_committed(reservation: Reservation, claim: Claim, committed: bool) -> None:
    if committed:
        metrics.CLAIMED.inc(len(claim.jobs))
    reservation.hand_over(claim if committed else None)


def _create_command(event: gate_events_pb2.IntentApproved) -> CreateExecutionJob | None:
    provider = enum_from_proto(common_pb2.Provider, event.provider, Provider)
    if provider is None or not is_valid_id(event.intent_id) or not event.meta.organization_id:
        # A malformed contract would be redelivered forever; keep it visible and move on.
        log.error("unusable IntentApproved dropped", extra={"event_id": event.meta.event_id})
        return None
    return create_job_command(event, provider)


class ControlChangedConsumer:
    def __init__(self, apply: ApplyControlChangeHandler) -> None:
        self._apply = apply

    async def __call__(self, event: ops_events_pb2.ExecutionControlChanged, uow: ExecutorUnitOfWork) -> None:
        control = control_from_event(event)
        if control is None:
            log.error("unusable ExecutionControlChanged dropped", extra={"event_id": event.meta.event_id})
            return
        await self._apply(uow, ApplyControlChange(control))


class ProviderEventConsumer:
    def __init__(self, record: RecordProviderReportHandler, clock: Clock) -> None:
        self._record = record
        self._clock = clock

    async def __call__(
        self, event: provider_events_pb2.ProviderEventReceived, uow: ExecutorUnitOfWork
    ) -> None:
        status = _REPORTED.get(event.type)
        if status is None or not event.provider_message_id or not event.from_me:
            return  # connection events, incoming messages: not about our sends
        match = _CLIENT_ID.search(event.provider_message_id)
        occurred = from_timestamp(event.occurred_at, present=event.HasField("occurred_at"))
        report = RecordProviderReport(
            provider_message_id=event.provider_message_id,
            client_message_id=match.group(1) if match else None,
            status=status,
            occurred_at=occurred or from_timestamp(event.meta.occurred_at) or self._clock.now(),
        )
        if await self._record(uow, report) and status is not ReportedStatus.SERVER_ACK:
            metrics.DELIVERY_UPDATES.labels(status.value).inc()
