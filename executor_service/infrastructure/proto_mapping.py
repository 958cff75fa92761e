"""Domain <-> protobuf for the executor context: used by the gRPC servicer, the consumers and the outbox."""

from __future__ import annotations

from typing import TypedDict

from google.protobuf.message import Message

from executor_service.application.create_job import CreateExecutionJob
from executor_service.application.instances import ProjectInstance
from executor_service.domain.events import (
    MessageDeliveryStatusChanged,
    MessageFailed,
    MessageNeedsReview,
    MessageRetryScheduled,
    MessageSent,
    ProviderHealthReported,
)
from executor_service.domain.instance import CappingLevel, HealthChange
from executor_service.domain.job import DeliveryStatus, ExecutionStatus, MessageExecutionJob
from executor_service.domain.message import OutboundMessage
from executor_service.domain.outcome import JobError
from libs.messaging.event_meta import event_meta
from libs.rpc.convert import enum_from_proto, enum_to_proto, from_timestamp, to_timestamp
from libs.seedwork.aggregate import DomainEvent
from libs.seedwork.shared_kernel import ConnectionState, MessageType, Provider, ProviderEngine, TargetKind
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import executor_events_pb2, gate_events_pb2, provider_events_pb2
from whatlead.executor.v1 import executor_pb2
from whatlead.reputation.v1 import reputation_pb2


def error_to_proto(error: JobError | None) -> executor_pb2.JobError | None:
    if error is None:
        return None
    return executor_pb2.JobError(
        error_class=enum_to_proto(executor_pb2.ErrorClass, error.error_class),
        code=error.code,
        message=error.message,
        restriction_kind=enum_to_proto(common_pb2.RestrictionKind, error.restriction),
        occurred_at=to_timestamp(error.occurred_at),
    )


def job_to_proto(job: MessageExecutionJob) -> executor_pb2.ExecutionJob:
    return executor_pb2.ExecutionJob(
        id=job.id,
        intent_id=job.intent_id,
        organization_id=job.organization_id,
        instance_id=job.instance_id,
        provider=enum_to_proto(common_pb2.Provider, job.provider),
        status=enum_to_proto(executor_pb2.JobStatus, job.status),
        attempts=job.attempts,
        last_error=error_to_proto(job.last_error),
        next_attempt_at=to_timestamp(job.next_attempt_at) if job.status in _WAITING else None,
        lease_until=to_timestamp(job.lease_until) if job.status is ExecutionStatus.PROCESSING else None,
        provider_message_id=job.provider_message_id or "",
        created_at=to_timestamp(job.created_at),
        executed_at=to_timestamp(job.executed_at),
        updated_at=to_timestamp(job.updated_at),
        campaign_id=job.campaign_id,
        delivery_status=enum_to_proto(executor_pb2.DeliveryStatus, job.delivery_status)
        if job.delivery_status is not DeliveryStatus.NONE
        else executor_pb2.DELIVERY_STATUS_UNSPECIFIED,
        lease_expirations=job.lease_expirations,
        client_message_id=job.client_message_id or "",
        expires_at=to_timestamp(job.expires_at),
    )


_WAITING = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RETRY})


def event_to_proto(event: DomainEvent) -> Message:
    """The outbox's mapper: every event this context publishes, as its protobuf contract."""
    match event:
        case MessageSent():
            return executor_events_pb2.MessageSent(
                meta=event_meta(event),
                **_job_fields(event),
                provider_message_id=event.provider_message_id,
                attempts=event.attempts,
                sent_at=to_timestamp(event.sent_at),
                campaign_id=event.campaign_id,
                attempt_started_at=to_timestamp(event.attempt_started_at),
            )
        case MessageFailed():
            return executor_events_pb2.MessageFailed(
                meta=event_meta(event),
                **_job_fields(event),
                error=error_to_proto(event.error),
                attempts=event.attempts,
                failed_at=to_timestamp(event.failed_at),
                campaign_id=event.campaign_id,
                attempt_started_at=to_timestamp(event.attempt_started_at),
            )
        case MessageRetryScheduled():
            return executor_events_pb2.MessageRetryScheduled(
                meta=event_meta(event),
                **_job_fields(event),
                attempt=event.attempt,
                next_attempt_at=to_timestamp(event.next_attempt_at),
                error=error_to_proto(event.error),
                actor=event.actor,
                attempt_started_at=to_timestamp(event.attempt_started_at),
            )
        case MessageNeedsReview():
            return executor_events_pb2.MessageNeedsReview(
                meta=event_meta(event),
                **_job_fields(event),
                attempts=event.attempts,
                error=error_to_proto(event.error),
                attempt_started_at=to_timestamp(event.attempt_started_at),
            )
        case MessageDeliveryStatusChanged():
            return executor_events_pb2.MessageDeliveryStatusChanged(
                meta=event_meta(event),
                **_job_fields(event),
                provider_message_id=event.provider_message_id,
                status=enum_to_proto(executor_pb2.DeliveryStatus, DeliveryStatus(event.status)),
                status_at=to_timestamp(event.status_at),
            )
        case ProviderHealthReported():
            return health_to_proto(event)
    raise TypeError(f"no protobuf contract for {type(event).__name__}")


_PROBE_CONNECTION_TYPE = {
    ConnectionState.CONNECTED: provider_events_pb2.PROVIDER_EVENT_TYPE_CONNECTION_CONNECTED,
    # A probe cannot tell a temporary ban from a permanent one: an error with the state, not INSTANCE_BANNED.
    ConnectionState.BANNED: provider_events_pb2.PROVIDER_EVENT_TYPE_CONNECTION_ERROR,
    ConnectionState.UNKNOWN: provider_events_pb2.PROVIDER_EVENT_TYPE_CONNECTION_ERROR,
}


def health_to_proto(event: ProviderHealthReported) -> provider_events_pb2.ProviderEventReceived:
    """A probe's finding as the gateway publishes a webhook's (meta: aggregate = the instance, the
    organization from the projection), with origin PROBE."""
    proto = provider_events_pb2.ProviderEventReceived(
        meta=event_meta(event),
        provider=enum_to_proto(common_pb2.Provider, event.provider),
        instance_id=event.instance_id,
        provider_instance_ref=event.provider_instance_ref,
        occurred_at=to_timestamp(event.occurred_at),
        origin=provider_events_pb2.PROVIDER_EVENT_ORIGIN_PROBE,
    )
    match HealthChange(event.change):
        case HealthChange.CONNECTION:
            state = ConnectionState(event.connection_state)
            proto.type = _PROBE_CONNECTION_TYPE.get(
                state, provider_events_pb2.PROVIDER_EVENT_TYPE_CONNECTION_DISCONNECTED
            )
            proto.connection_state = enum_to_proto(common_pb2.ConnectionState, state)
            proto.connection_reason = event.connection_reason
        case HealthChange.TIMELOCKED:
            proto.type = provider_events_pb2.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCKED
            proto.restriction_kind = common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK
            until = to_timestamp(event.timelock_until)
            if until is not None:
                proto.timelock_until.CopyFrom(until)
        case HealthChange.TIMELOCK_LIFTED:
            proto.type = provider_events_pb2.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCK_LIFTED
        case HealthChange.CAPPING:
            proto.type = provider_events_pb2.PROVIDER_EVENT_TYPE_CAPPING_CHANGED
            proto.capping_status = enum_to_proto(
                provider_events_pb2.CappingStatus, CappingLevel(event.capping)
            )
            proto.quota_used = event.quota_used or 0
            proto.quota_total = event.quota_total or 0
    return proto


class _JobFields(TypedDict):
    job_id: str
    intent_id: str
    instance_id: str
    provider: common_pb2.Provider.ValueType


def _job_fields(
    event: MessageSent
    | MessageFailed
    | MessageRetryScheduled
    | MessageNeedsReview
    | MessageDeliveryStatusChanged,
) -> _JobFields:
    return {
        "job_id": event.job_id,
        "intent_id": event.intent_id,
        "instance_id": event.instance_id,
        "provider": enum_to_proto(common_pb2.Provider, event.provider),
    }


# --- incoming events -----------------------------------------------------------------------------------


def message_from_proto(
    target: common_pb2.Target, message_type: int, payload: common_pb2.MessagePayload
) -> OutboundMessage:
    """The approved message, as the executor keeps it. An inconsistent payload stays visible to the domain
    (which fails the job PERMANENT) rather than being dropped here."""
    kind = enum_from_proto(common_pb2.TargetKind, target.kind, TargetKind) or TargetKind.PHONE
    mtype = enum_from_proto(common_pb2.MessageType, message_type, MessageType) or MessageType.TEXT
    content = payload.WhichOneof("content")
    fields: dict[str, str] = {}
    if content == "text":
        fields["text"] = payload.text.text
    elif content == "audio":
        fields["audio_url"] = payload.audio.audio_url
    elif content == "media":
        fields.update(
            media_url=payload.media.media_url,
            mime_type=payload.media.mime_type,
            caption=payload.media.caption,
        )
    elif content == "reaction":
        fields.update(emoji=payload.reaction.emoji, message_ref=payload.reaction.message_ref)
    if content is None or content.upper() != mtype.value:
        # The set case must match the type; an empty field of the declared type fails validation.
        fields = {}
    return OutboundMessage(target_kind=kind, recipient=target.value, type=mtype, **fields)


def create_job_command(event: gate_events_pb2.IntentApproved, provider: Provider) -> CreateExecutionJob:
    """The job an approval asks for (`provider` already read from the event and known)."""
    return CreateExecutionJob(
        intent_id=event.intent_id,
        organization_id=event.meta.organization_id,
        instance_id=event.instance_id,
        provider=provider,
        provider_instance_ref=event.provider_instance_ref,
        campaign_id=event.campaign_id,
        message=message_from_proto(event.target, event.type, event.payload),
        not_before=from_timestamp(event.not_before, present=event.HasField("not_before")),
        expires_at=from_timestamp(event.expires_at, present=event.HasField("expires_at")),
    )


def project_instance_command(instance: reputation_pb2.Instance) -> ProjectInstance | None:
    """The registry's instance as the projection keeps it; None when it names no provider we know."""
    provider = enum_from_proto(common_pb2.Provider, instance.provider, Provider)
    if provider is None or not instance.id:
        return None
    return ProjectInstance(
        instance_id=instance.id,
        organization_id=instance.organization_id,
        provider=provider,
        provider_instance_ref=instance.provider_instance_ref,
        provider_version=instance.provider_version,
        provider_engine=enum_from_proto(common_pb2.ProviderEngine, instance.provider_engine, ProviderEngine)
        or ProviderEngine.UNSPECIFIED,
        version=instance.version,
    )
