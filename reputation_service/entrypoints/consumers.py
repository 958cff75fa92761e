"""Event consumers: what the gateway (webhooks, the Executor's probes) and the Executor (send outcomes)
report becomes signals. Each batch is applied in the consumer's transaction, with its inbox rows.

Which report is which fact (docs/adr/0044-reputation-signals.md):
- sent: the Executor's MessageSent only. The provider's own "sent" (its server ack, MESSAGE_SENT) is the
  same fact reported again, so it is not counted.
- delivered, read, failed: the provider's reports about the instance's own messages (from_me), keyed by
  the message; failed also from the Executor's MessageFailed, keyed by the message its job sent when that
  is known, so a failure the provider reported and the Executor then published is one fact.
- time-locked: a provider failure with WhatsApp's code 463 (or restriction REACHOUT_TIMELOCK) and an
  Executor failure with restriction REACHOUT_TIMELOCK, once per message; the provider's session-level
  time-lock once per lock (its end).
- banned: the provider's INSTANCE_BANNED, and an Executor failure with a ban restriction (once per
  message).

The same ProviderEventReceived also moves the registry's connection state (ConnectionStates): connected,
disconnected, errors, bans and new QR codes, by its own durable consumer so the signals path never waits on
it. And ops' PlanChanged: the organization's instance cap, which RegisterInstance enforces.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from libs.rpc.convert import enum_from_proto, from_timestamp
from libs.seedwork.clock import Clock
from libs.seedwork.errors import InvalidArgument
from libs.seedwork.shared_kernel import ConnectionState
from reputation_service.application.apply_plan import ApplyPlanChange, ApplyPlanChangeHandler
from reputation_service.application.observe_connection import (
    ConnectionReport,
    ConnectionsObserved,
    ObserveConnectionsHandler,
)
from reputation_service.application.record_signals import (
    Observation,
    RecordSignals,
    RecordSignalsHandler,
    SignalsRecorded,
)
from reputation_service.application.reputation_updates import ReputationUpdater
from reputation_service.domain.evaluation import RestrictionKind
from reputation_service.domain.ports import ReputationUnitOfWork
from reputation_service.domain.signals import SignalKind, SignalSource, message_key
from reputation_service.infrastructure import metrics
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import executor_events_pb2, ops_events_pb2, provider_events_pb2
from whatlead.executor.v1 import executor_pb2

_T = provider_events_pb2
TIMELOCK_CODE = "463"  # WhatsApp's reach-out time-lock

# Facts about one of the instance's own messages (from_me, with its id).
_OWN_MESSAGE = {
    _T.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED: SignalKind.DELIVERED,
    _T.PROVIDER_EVENT_TYPE_MESSAGE_READ: SignalKind.READ,
    _T.PROVIDER_EVENT_TYPE_MESSAGE_FAILED: SignalKind.FAILED,
}
# Incoming messages, keyed by their own id.
_INCOMING = {
    _T.PROVIDER_EVENT_TYPE_MESSAGE_REPLIED: SignalKind.REPLIED,
    _T.PROVIDER_EVENT_TYPE_MESSAGE_RECEIVED: SignalKind.RECEIVED,
}
# Facts about the instance, one per report.
_INSTANCE = {
    _T.PROVIDER_EVENT_TYPE_CONNECTION_CONNECTED: SignalKind.CONNECTION_CONNECTED,
    _T.PROVIDER_EVENT_TYPE_CONNECTION_DISCONNECTED: SignalKind.CONNECTION_DISCONNECTED,
    _T.PROVIDER_EVENT_TYPE_CONNECTION_ERROR: SignalKind.CONNECTION_ERROR,
    _T.PROVIDER_EVENT_TYPE_INSTANCE_BANNED: SignalKind.BANNED,
}
_BANS = {
    common_pb2.RESTRICTION_KIND_TEMPORARY_BAN: RestrictionKind.TEMPORARY_BAN,
    common_pb2.RESTRICTION_KIND_PERMANENT_BAN: RestrictionKind.PERMANENT_BAN,
}


def _ban(restriction_kind: common_pb2.RestrictionKind.ValueType) -> RestrictionKind:
    # A ban the provider did not say was temporary is taken as permanent: a number that might be banned
    # for good is not worth the next send.
    return _BANS.get(restriction_kind, RestrictionKind.PERMANENT_BAN)


def _time(stamp: Timestamp, *, present: bool = True) -> datetime | None:
    try:
        return from_timestamp(stamp, present=present)
    except InvalidArgument:  # a malformed time is no time: the report's other times stand in
        return None


class _Signals:
    """Records a batch of events' observations and, in the same transaction, what they mean for the
    instances' reputation (a restriction cools the number at once, anything else makes it due for the
    debounced evaluation); counts, once the transaction committed, what it did."""

    def __init__(
        self, record: RecordSignalsHandler, clock: Clock, reputation: ReputationUpdater | None = None
    ) -> None:
        self._record = record
        self._clock = clock
        self._reputation = reputation

    async def __call__(self, event: Message, uow: ReputationUnitOfWork) -> None:
        await self.handle_many([event], uow)

    async def handle_many(self, events: Sequence[Message], uow: ReputationUnitOfWork) -> None:
        observations = [o for event in events for o in self.observations(event)]
        result = await self._record(uow, RecordSignals(observations))
        uow.after_transaction(partial(_count, result))
        if self._reputation is not None:
            await self._reputation.signals_recorded(uow, result)

    def observations(self, event: Message) -> list[Observation]:
        raise NotImplementedError

    def _occurred(self, stamp: Timestamp, present: bool, meta: common_pb2.EventMeta) -> datetime:
        return _time(stamp, present=present) or _time(meta.occurred_at) or self._clock.now()


def _count(result: SignalsRecorded, committed: bool) -> None:
    if not committed:
        return
    for signal in result.recorded:
        metrics.SIGNALS.labels(signal.kind.value).inc()
    for kind in result.duplicates:
        metrics.SIGNAL_DUPLICATES.labels(kind.value).inc()
    for observation in result.unknown_instance:
        metrics.UNKNOWN_INSTANCE.labels(observation.source.value).inc()


class ProviderEventSignals(_Signals):
    """The gateway's ProviderEventReceived: webhooks (origin WEBHOOK) and the Executor's health probes
    (origin PROBE). The provider's server ack, QR codes, lifted time-locks and capping are not signals."""

    def observations(self, event: Message) -> list[Observation]:
        assert isinstance(event, provider_events_pb2.ProviderEventReceived)
        source = (
            SignalSource.PROBE if event.origin == _T.PROVIDER_EVENT_ORIGIN_PROBE else SignalSource.WEBHOOK
        )
        observe = partial(
            Observation,
            instance_id=event.instance_id,
            organization_id=event.meta.organization_id,
            occurred_at=self._occurred(event.occurred_at, event.HasField("occurred_at"), event.meta),
            source=source,
        )
        if event.type in _OWN_MESSAGE:
            if not event.provider_message_id or not event.from_me:
                return []  # receipts of a contact's message, or without the message: not about our sends
            key = message_key(event.provider_message_id)
            about_message = partial(
                observe,
                identity=f"msg:{key}",
                provider_message_id=event.provider_message_id,
                message_key=key,
                is_group=event.is_group,
            )
            found = [about_message(kind=_OWN_MESSAGE[event.type])]
            if event.type == _T.PROVIDER_EVENT_TYPE_MESSAGE_FAILED and (
                event.error_code == TIMELOCK_CODE
                or event.restriction_kind == common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK
            ):
                found.append(
                    about_message(
                        kind=SignalKind.REACHOUT_TIMELOCKED, restriction=RestrictionKind.REACHOUT_TIMELOCK
                    )
                )
            return found
        if event.type in _INCOMING:
            if not event.provider_message_id:
                return []
            return [
                observe(
                    kind=_INCOMING[event.type],
                    identity=f"msg:{message_key(event.provider_message_id)}",
                    provider_message_id=event.provider_message_id,
                    is_group=event.is_group,
                )
            ]
        if event.type in _INSTANCE:
            # The same change reported twice (a provider re-sending its webhook under another id) is one
            # fact: keyed by when the provider says it happened and why; by the report when it did not say.
            stated = _time(event.occurred_at, present=event.HasField("occurred_at"))
            reason = event.connection_reason or event.ban_code
            identity = f"at:{stated.isoformat()}:{reason}" if stated else f"event:{event.meta.event_id}"
            kind = _INSTANCE[event.type]
            restriction = _ban(event.restriction_kind) if kind is SignalKind.BANNED else None
            return [observe(kind=kind, identity=identity, restriction=restriction)]
        if event.type == _T.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCKED:
            until = _time(event.timelock_until, present=event.HasField("timelock_until"))
            identity = f"until:{until.isoformat()}" if until else f"event:{event.meta.event_id}"
            return [
                observe(
                    kind=SignalKind.REACHOUT_TIMELOCKED,
                    identity=identity,
                    restriction=RestrictionKind.REACHOUT_TIMELOCK,
                    restriction_until=until,
                )
            ]
        return []


class ExecutorEventSignals(_Signals):
    """The Executor's MessageSent (the one source of "sent") and MessageFailed (failed, and a time-lock or
    a ban when its restriction says so)."""

    def observations(self, event: Message) -> list[Observation]:
        if isinstance(event, executor_events_pb2.MessageSent):
            key = message_key(event.provider_message_id) if event.provider_message_id else ""
            return [
                Observation(
                    kind=SignalKind.MESSAGE_SENT,
                    instance_id=event.instance_id,
                    organization_id=event.meta.organization_id,
                    occurred_at=self._occurred(event.sent_at, event.HasField("sent_at"), event.meta),
                    source=SignalSource.EXECUTOR,
                    # A provider that names no message: the job is the message.
                    identity=f"msg:{key}" if key else f"job:{event.job_id}:{event.attempts}",
                    provider_message_id=event.provider_message_id,
                    message_key=key,
                    job_id=event.job_id,
                    attempts=event.attempts,
                )
            ]
        assert isinstance(event, executor_events_pb2.MessageFailed)
        if event.error.error_class == executor_pb2.ERROR_CLASS_EXPIRED:
            return []  # the intent expired before a send was tried: nothing happened at the provider
        observe = partial(
            Observation,
            instance_id=event.instance_id,
            organization_id=event.meta.organization_id,
            occurred_at=self._occurred(event.failed_at, event.HasField("failed_at"), event.meta),
            source=SignalSource.EXECUTOR,
            job_id=event.job_id,
            attempts=event.attempts,
        )
        found = [observe(kind=SignalKind.FAILED)]
        restriction = event.error.restriction_kind
        if restriction == common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK or event.error.code == TIMELOCK_CODE:
            found.append(
                observe(kind=SignalKind.REACHOUT_TIMELOCKED, restriction=RestrictionKind.REACHOUT_TIMELOCK)
            )
        elif restriction in _BANS:
            found.append(observe(kind=SignalKind.BANNED, restriction=_ban(restriction)))
        return found


# What each connection report means when the event does not name the state itself.
_CONNECTION_STATES = {
    _T.PROVIDER_EVENT_TYPE_CONNECTION_CONNECTED: ConnectionState.CONNECTED,
    _T.PROVIDER_EVENT_TYPE_CONNECTION_DISCONNECTED: ConnectionState.DISCONNECTED,
    _T.PROVIDER_EVENT_TYPE_CONNECTION_ERROR: ConnectionState.DISCONNECTED,
    _T.PROVIDER_EVENT_TYPE_INSTANCE_BANNED: ConnectionState.BANNED,
    _T.PROVIDER_EVENT_TYPE_QR_UPDATED: ConnectionState.QR_REQUIRED,
}
# The event's own state wins where it names one (a disconnect that is a logout), except for a ban and a
# new QR code, whose meaning is the type.
_TYPE_DECIDES = frozenset({_T.PROVIDER_EVENT_TYPE_INSTANCE_BANNED, _T.PROVIDER_EVENT_TYPE_QR_UPDATED})


class ConnectionStates:
    """The gateway's connection reports (webhooks and the Executor's probes alike) applied to the
    registry's instances, newest observed wins (ObserveConnectionsHandler). Every other provider event is
    acknowledged and ignored."""

    def __init__(self, observe: ObserveConnectionsHandler, clock: Clock) -> None:
        self._observe = observe
        self._clock = clock

    async def __call__(self, event: Message, uow: ReputationUnitOfWork) -> None:
        await self.handle_many([event], uow)

    def concerns(self, event: Message) -> bool:
        """Connection reports only: the consumer acks the rest (most of the stream: receipts, messages)
        without a transaction (libs.messaging.consumer.SelectiveHandler)."""
        assert isinstance(event, provider_events_pb2.ProviderEventReceived)
        return event.type in _CONNECTION_STATES

    async def handle_many(self, events: Sequence[Message], uow: ReputationUnitOfWork) -> None:
        reports = [report for event in events if (report := self.report(event)) is not None]
        if reports:
            result = await self._observe(uow, reports)
            uow.after_transaction(partial(_count_connections, result))

    def report(self, event: Message) -> ConnectionReport | None:
        assert isinstance(event, provider_events_pb2.ProviderEventReceived)
        state = _CONNECTION_STATES.get(event.type)
        if state is None:
            return None
        if event.type not in _TYPE_DECIDES and event.connection_state:
            named = enum_from_proto(common_pb2.ConnectionState, event.connection_state, ConnectionState)
            if named is not None and named is not ConnectionState.UNKNOWN:
                state = named
        return ConnectionReport(
            organization_id=event.meta.organization_id,
            instance_id=event.instance_id,
            state=state,
            reason=event.connection_reason or event.ban_code,
            observed_at=_time(event.occurred_at, present=event.HasField("occurred_at"))
            or _time(event.meta.occurred_at)
            or self._clock.now(),
        )


def _count_connections(result: ConnectionsObserved, committed: bool) -> None:
    if committed:
        metrics.CONNECTION_REPORTS.labels("applied").inc(result.applied)
        metrics.CONNECTION_REPORTS.labels("stale").inc(result.stale)
        metrics.CONNECTION_REPORTS.labels("unknown_instance").inc(result.unknown_instance)


class PlanChanges:
    """Ops' PlanChanged: keeps the organization's instance cap (plan.limits.max_instances, by version)."""

    def __init__(self, apply: ApplyPlanChangeHandler) -> None:
        self._apply = apply

    async def __call__(self, event: ops_events_pb2.PlanChanged, uow: ReputationUnitOfWork) -> None:
        plan = event.plan
        await self._apply(
            uow,
            ApplyPlanChange(
                organization_id=plan.organization_id or event.meta.organization_id,
                max_instances=plan.limits.max_instances,
                version=plan.version,
            ),
        )
