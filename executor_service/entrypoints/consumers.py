"""Event consumers: approved intents become jobs; ops' controls feed the kill-switch; Reputation's
instances feed the instance projection; provider events become delivery progress, late failures of sends,
and facts about instances (connection, time-lock, capping). Each handler runs inside the consumer's
transaction (with its inbox row)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from executor_service.application.apply_control import ApplyControlChange, ApplyControlChangeHandler
from executor_service.application.claim_jobs import Claim, ClaimNewJobs, ClaimNewJobsHandler
from executor_service.application.create_job import CreateExecutionJob, CreateExecutionJobHandler
from executor_service.application.instances import (
    FactKind,
    ProjectInstanceHandler,
    RecordInstanceFact,
    RecordInstanceFactHandler,
)
from executor_service.application.record_provider_event import (
    TIMELOCK_CODE,
    RecordProviderReport,
    RecordProviderReportHandler,
    RecordSendFailure,
    RecordSendFailureHandler,
    ReportedStatus,
)
from executor_service.domain.instance import CappingLevel
from executor_service.domain.job import MessageExecutionJob
from executor_service.domain.ports import ExecutorUnitOfWork
from executor_service.entrypoints.workers import IdleWorkers, Reservation
from executor_service.infrastructure import metrics
from executor_service.infrastructure.proto_mapping import create_job_command, project_instance_command
from libs.messaging.controls import control_from_event
from libs.rpc.convert import enum_from_proto, from_timestamp
from libs.seedwork.clock import Clock
from libs.seedwork.ids import is_valid_id
from libs.seedwork.shared_kernel import ConnectionState, Provider
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import gate_events_pb2, ops_events_pb2, provider_events_pb2, reputation_events_pb2

log = logging.getLogger(__name__)

_REPORTED = {
    provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_SENT: ReportedStatus.SERVER_ACK,
    provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED: ReportedStatus.DELIVERED,
    provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_READ: ReportedStatus.READ,
}
# Our chosen ids ("3EB0" + 16 hex, see libs.providers.new_client_message_id) travel inside the provider's
# ids: as is (wuzapi) or serialized as "true_<chat>_<id>" (WAHA).
_CLIENT_ID = re.compile(r"(?:^|_)(3EB0[0-9A-F]{16})$")

_T = provider_events_pb2
# Instance-level facts, and the connection state each implies when the event carries none.
_FACTS: dict[int, tuple[FactKind, ConnectionState | None]] = {
    _T.PROVIDER_EVENT_TYPE_CONNECTION_CONNECTED: (FactKind.CONNECTION, ConnectionState.CONNECTED),
    _T.PROVIDER_EVENT_TYPE_CONNECTION_DISCONNECTED: (FactKind.CONNECTION, ConnectionState.DISCONNECTED),
    _T.PROVIDER_EVENT_TYPE_CONNECTION_ERROR: (FactKind.CONNECTION, None),
    _T.PROVIDER_EVENT_TYPE_INSTANCE_BANNED: (FactKind.CONNECTION, ConnectionState.BANNED),
    _T.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCKED: (FactKind.TIMELOCKED, None),
    _T.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCK_LIFTED: (FactKind.TIMELOCK_LIFTED, None),
    _T.PROVIDER_EVENT_TYPE_CAPPING_CHANGED: (FactKind.CAPPING, None),
}


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


class InstanceConsumer:
    """Reputation's InstanceRegistered / InstanceChanged: the registry's profile of each instance."""

    def __init__(self, project: ProjectInstanceHandler) -> None:
        self._project = project

    async def __call__(
        self,
        event: reputation_events_pb2.InstanceRegistered | reputation_events_pb2.InstanceChanged,
        uow: ExecutorUnitOfWork,
    ) -> None:
        command = project_instance_command(event.instance)
        if command is None:
            log.error("unusable instance event dropped", extra={"event_id": event.meta.event_id})
            return
        await self._project(uow, command)


class ProviderEventConsumer:
    def __init__(
        self,
        record: RecordProviderReportHandler,
        clock: Clock,
        *,
        record_failure: RecordSendFailureHandler,
        record_fact: RecordInstanceFactHandler,
    ) -> None:
        self._record = record
        self._clock = clock
        self._record_failure = record_failure
        self._record_fact = record_fact

    async def __call__(
        self, event: provider_events_pb2.ProviderEventReceived, uow: ExecutorUnitOfWork
    ) -> None:
        if event.type in _FACTS:
            await self._fact(event, uow)
        elif event.type == _T.PROVIDER_EVENT_TYPE_MESSAGE_FAILED:
            await self._failure(event, uow)
        else:
            await self._report(event, uow)

    def _occurred(self, event: provider_events_pb2.ProviderEventReceived) -> datetime:
        occurred = from_timestamp(event.occurred_at, present=event.HasField("occurred_at"))
        return occurred or from_timestamp(event.meta.occurred_at) or self._clock.now()

    async def _report(
        self, event: provider_events_pb2.ProviderEventReceived, uow: ExecutorUnitOfWork
    ) -> None:
        status = _REPORTED.get(event.type)
        if status is None or not event.provider_message_id or not event.from_me:
            return  # incoming messages, QR codes: not about our sends
        match = _CLIENT_ID.search(event.provider_message_id)
        report = RecordProviderReport(
            provider_message_id=event.provider_message_id,
            client_message_id=match.group(1) if match else None,
            status=status,
            occurred_at=self._occurred(event),
        )
        if await self._record(uow, report) and status is not ReportedStatus.SERVER_ACK:
            metrics.DELIVERY_UPDATES.labels(status.value).inc()

    async def _failure(
        self, event: provider_events_pb2.ProviderEventReceived, uow: ExecutorUnitOfWork
    ) -> None:
        if not event.provider_message_id or not event.from_me:
            return  # not one of the instance's own messages
        match = _CLIENT_ID.search(event.provider_message_id)
        timelock = event.restriction_kind == common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK or (
            event.error_code == TIMELOCK_CODE
        )
        report = RecordSendFailure(
            provider_message_id=event.provider_message_id,
            client_message_id=match.group(1) if match else None,
            error_code=event.error_code,
            reachout_timelock=timelock,
            occurred_at=self._occurred(event),
        )
        if await self._record_failure(uow, report):
            metrics.FAILED_AFTER_SEND.labels("reachout_timelock" if timelock else "other").inc()

    async def _fact(self, event: provider_events_pb2.ProviderEventReceived, uow: ExecutorUnitOfWork) -> None:
        provider = enum_from_proto(common_pb2.Provider, event.provider, Provider)
        if provider is None or not (event.instance_id or event.provider_instance_ref):
            return
        kind, implied = _FACTS[event.type]
        state = enum_from_proto(common_pb2.ConnectionState, event.connection_state, ConnectionState)
        if event.type == _T.PROVIDER_EVENT_TYPE_INSTANCE_BANNED:
            state = ConnectionState.BANNED
        fact = RecordInstanceFact(
            instance_id=event.instance_id,
            organization_id=event.meta.organization_id,
            provider=provider,
            provider_instance_ref=event.provider_instance_ref,
            kind=kind,
            occurred_at=self._occurred(event),
            connection_state=state or implied,
            connection_reason=event.connection_reason,
            timelock_until=from_timestamp(event.timelock_until, present=event.HasField("timelock_until")),
            capping=enum_from_proto(_T.CappingStatus, event.capping_status, CappingLevel),
            quota_used=event.quota_used if event.capping_status else None,
            quota_total=(event.quota_total or None) if event.capping_status else None,
        )
        await self._record_fact(uow, fact)
