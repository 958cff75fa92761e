"""Domain <-> protobuf for the gate context: used by the gRPC servicer, the event mapper and the consumers."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from google.protobuf.message import Message

from gate_service.domain.decision import (
    CandidateVerdict,
    DecisionOutcome,
    DecisionReason,
    DecisionRecord,
    Verdict,
)
from gate_service.domain.events import (
    IntentApproved,
    IntentBlocked,
    IntentCreated,
    IntentDropped,
    IntentFailed,
    IntentQueued,
    IntentSent,
)
from gate_service.domain.intent import (
    AudioPayload,
    IntentOrigin,
    IntentStatus,
    MediaPayload,
    MessageIntent,
    Payload,
    ReactionPayload,
    TextPayload,
)
from gate_service.domain.policies import HealthStatus, WarmupPhase
from gate_service.domain.projection import InstanceState, Plan, Reputation
from libs.messaging.event_meta import event_meta
from libs.rpc.convert import enum_from_proto, from_timestamp, to_timestamp
from libs.seedwork.aggregate import DomainEvent
from libs.seedwork.phone import normalize_phone
from libs.seedwork.shared_kernel import (
    ConnectionState,
    MessageType,
    Provider,
    Purpose,
    TargetKind,
)
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import gate_events_pb2
from whatlead.executor.v1 import executor_pb2
from whatlead.gate.v1 import gate_pb2
from whatlead.ops.v1 import ops_pb2
from whatlead.reputation.v1 import reputation_pb2

if TYPE_CHECKING:  # the stubs' generic name of a proto enum's class
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

V = TypeVar("V", bound=int)
_ENUMS: dict[int, dict[int, Any]] = {}  # id(proto enum) -> id(domain member or None) -> proto number


def _e(proto_enum: _EnumTypeWrapper[V], value: StrEnum | None) -> V:
    """Domain enum -> proto number by name (None -> UNSPECIFIED), remembered per proto enum and member
    (hot path: a member's `.value` is a slow property, its id() is not; members live as long as the
    process)."""
    try:
        number: V = _ENUMS[id(proto_enum)][id(value)]
    except KeyError:
        name = proto_enum.keys()[0]  # ..._UNSPECIFIED, number 0
        if value is not None:
            name = name.removesuffix("UNSPECIFIED") + value.value
        number = _ENUMS.setdefault(id(proto_enum), {})[id(value)] = proto_enum.Value(name)
    return number


def payload_to_proto(payload: Payload) -> common_pb2.MessagePayload:
    match payload:
        case TextPayload():
            return common_pb2.MessagePayload(text=common_pb2.TextPayload(text=payload.text))
        case AudioPayload():
            return common_pb2.MessagePayload(audio=common_pb2.AudioPayload(audio_url=payload.audio_url))
        case MediaPayload():
            return common_pb2.MessagePayload(
                media=common_pb2.MediaPayload(
                    media_url=payload.media_url, mime_type=payload.mime_type, caption=payload.caption
                )
            )
        case ReactionPayload():
            return common_pb2.MessagePayload(
                reaction=common_pb2.ReactionPayload(emoji=payload.emoji, message_ref=payload.message_ref)
            )
    raise TypeError(type(payload).__name__)


def payload_from_proto(message: common_pb2.MessagePayload) -> Payload | None:
    match message.WhichOneof("content"):
        case "text":
            return TextPayload(message.text.text)
        case "audio":
            return AudioPayload(message.audio.audio_url)
        case "media":
            return MediaPayload(message.media.media_url, message.media.mime_type, message.media.caption)
        case "reaction":
            return ReactionPayload(message.reaction.emoji, message.reaction.message_ref)
    return None


def target_kind_from_proto(number: int) -> TargetKind | None:
    return enum_from_proto(common_pb2.TargetKind, number, TargetKind)


def target_to_proto(intent: MessageIntent) -> common_pb2.Target:
    return common_pb2.Target(kind=_e(common_pb2.TargetKind, intent.target.kind), value=intent.target.value)


def verdict_to_proto(verdict: CandidateVerdict) -> gate_pb2.CandidateVerdict:
    return gate_pb2.CandidateVerdict(
        instance_id=verdict.instance_id,
        verdict=_e(gate_pb2.Verdict, verdict.verdict),
        reason=_e(gate_pb2.DecisionReason, verdict.reason),
        retry_at=to_timestamp(verdict.retry_at),
        score=verdict.score,
        reputation_score=verdict.reputation_score,
        health=_e(reputation_pb2.HealthStatus, verdict.health),
        phase=_e(reputation_pb2.WarmupPhase, verdict.phase),
        rate_pressure=verdict.rate_pressure,
        sticky=verdict.sticky,
    )


# The same record goes into the approved event and into the response: built once.
_RECENT_DECISIONS: OrderedDict[int, tuple[DecisionRecord, gate_pb2.DecisionRecord]] = OrderedDict()


def decision_to_proto(record: DecisionRecord) -> gate_pb2.DecisionRecord:
    cached = _RECENT_DECISIONS.get(id(record))
    if cached is not None and cached[0] is record:
        return cached[1]
    message = _decision_to_proto(record)
    _RECENT_DECISIONS[id(record)] = (record, message)
    if len(_RECENT_DECISIONS) > 4096:
        _RECENT_DECISIONS.popitem(last=False)
    return message


def _decision_to_proto(record: DecisionRecord) -> gate_pb2.DecisionRecord:
    return gate_pb2.DecisionRecord(
        intent_id=record.intent_id,
        outcome=_e(gate_pb2.DecisionOutcome, record.outcome),
        reason=_e(gate_pb2.DecisionReason, record.reason),
        chosen_instance_id=record.chosen_instance_id or "",
        decided_at=to_timestamp(record.decided_at),
        queued_until=to_timestamp(record.queued_until),
        candidates=[verdict_to_proto(v) for v in record.candidates],
        attempt=record.attempt,
        excluded=[
            gate_pb2.ExcludedCount(reason=_e(gate_pb2.DecisionReason, reason), instances=count)
            for reason, count in sorted(record.excluded.items())
        ],
        pinned_instance_id=record.pinned_instance_id or "",
    )


def intent_to_proto(intent: MessageIntent) -> gate_pb2.MessageIntent:
    return gate_pb2.MessageIntent(
        id=intent.id,
        organization_id=intent.organization_id,
        target=target_to_proto(intent),
        type=_e(common_pb2.MessageType, intent.type),
        purpose=_e(common_pb2.Purpose, intent.purpose),
        origin=_e(gate_pb2.IntentOrigin, intent.origin),
        campaign_id=intent.campaign_id,
        payload=payload_to_proto(intent.payload),
        idempotency_key=intent.idempotency_key,
        status=_e(gate_pb2.IntentStatus, intent.status),
        decided_by_instance_id=intent.decided_by_instance_id or "",
        status_reason=_e(gate_pb2.DecisionReason, intent.status_reason),
        queued_until=to_timestamp(intent.queued_until),
        not_before=to_timestamp(intent.not_before),
        expires_at=to_timestamp(intent.expires_at),
        created_at=to_timestamp(intent.created_at),
        decided_at=to_timestamp(intent.decided_at),
        pinned_instance_id=intent.pinned_instance_id or "",
    )


def event_to_proto(event: DomainEvent) -> Message:
    """The outbox's mapper: every event this context publishes, as its protobuf contract."""
    match event:
        case IntentCreated():
            return gate_events_pb2.IntentCreated(meta=event_meta(event), intent=intent_to_proto(event.intent))
        case IntentApproved():
            intent = event.intent
            return gate_events_pb2.IntentApproved(
                meta=event_meta(event),
                intent_id=intent.id,
                target=target_to_proto(intent),
                type=_e(common_pb2.MessageType, intent.type),
                payload=payload_to_proto(intent.payload),
                purpose=_e(common_pb2.Purpose, intent.purpose),
                instance_id=event.instance.instance_id,
                provider=_e(common_pb2.Provider, event.instance.provider),
                provider_instance_ref=event.instance.provider_instance_ref,
                campaign_id=intent.campaign_id,
                expires_at=to_timestamp(intent.expires_at),
                not_before=to_timestamp(intent.not_before),
                origin=_e(gate_pb2.IntentOrigin, intent.origin),
                decision=decision_to_proto(event.decision),
            )
        case IntentQueued():
            return gate_events_pb2.IntentQueued(
                **_not_approved_fields(event), queued_until=to_timestamp(event.queued_until)
            )
        case IntentBlocked():
            return gate_events_pb2.IntentBlocked(**_not_approved_fields(event))
        case IntentDropped():
            return gate_events_pb2.IntentDropped(**_not_approved_fields(event))
        case IntentSent():
            return gate_events_pb2.IntentSent(
                meta=event_meta(event),
                intent_id=event.aggregate_id,
                instance_id=event.instance_id,
                job_id=event.job_id,
                provider_message_id=event.provider_message_id,
                sent_at=to_timestamp(event.sent_at),
            )
        case IntentFailed():
            return gate_events_pb2.IntentFailed(
                meta=event_meta(event),
                intent_id=event.aggregate_id,
                instance_id=event.instance_id,
                job_id=event.job_id,
                error=executor_pb2.JobError(
                    error_class=executor_pb2.ErrorClass.Value("ERROR_CLASS_" + event.error_class)
                    if "ERROR_CLASS_" + event.error_class in executor_pb2.ErrorClass.keys()  # noqa: SIM118
                    else executor_pb2.ERROR_CLASS_UNSPECIFIED,
                    code=event.error_code,
                    message=event.error_message,
                    occurred_at=to_timestamp(event.failed_at),
                ),
                failed_at=to_timestamp(event.failed_at),
            )
    raise TypeError(f"no protobuf contract for {type(event).__name__}")


class _NotApproved(TypedDict):
    """What every decision other than an approval publishes: the reason and the decision record."""

    meta: common_pb2.EventMeta
    intent_id: str
    reason: gate_pb2.DecisionReason.ValueType
    decision: gate_pb2.DecisionRecord


def _not_approved_fields(event: IntentQueued | IntentBlocked | IntentDropped) -> _NotApproved:
    return {
        "meta": event_meta(event),
        "intent_id": event.aggregate_id,
        "reason": _e(gate_pb2.DecisionReason, event.reason),
        "decision": decision_to_proto(event.decision),
    }


# --- what other contexts publish, as the Gate's projection values ---------------------------------------


def instance_state_from_proto(instance: reputation_pb2.Instance) -> InstanceState:
    return InstanceState(
        instance_id=instance.id,
        organization_id=instance.organization_id,
        provider=enum_from_proto(common_pb2.Provider, instance.provider, Provider) or Provider.SIMULATOR,
        provider_instance_ref=instance.provider_instance_ref,
        purposes=frozenset(
            p
            for p in (enum_from_proto(common_pb2.Purpose, n, Purpose) for n in instance.purposes)
            if p is not None
        ),
        connection_state=enum_from_proto(
            common_pb2.ConnectionState, instance.connection_state, ConnectionState
        )
        or ConnectionState.UNKNOWN,
        instance_version=instance.version,
        phone=normalize_phone(instance.phone) or "",
    )


def reputation_from_proto(reputation: reputation_pb2.InstanceReputation) -> Reputation:
    return Reputation(
        score=reputation.score,
        health=enum_from_proto(reputation_pb2.HealthStatus, reputation.health, HealthStatus),
        phase=enum_from_proto(reputation_pb2.WarmupPhase, reputation.phase, WarmupPhase),
        cooldown_until=from_timestamp(
            reputation.cooldown_until, present=reputation.HasField("cooldown_until")
        ),
        version=reputation.version,
    )


def plan_from_proto(plan: ops_pb2.Plan) -> Plan:
    return Plan(
        organization_id=plan.organization_id,
        daily_cap=plan.limits.daily_message_cap,
        monthly_cap=plan.limits.monthly_message_cap,
        version=plan.version,
    )


def status_from_proto(number: int) -> IntentStatus | None:
    return enum_from_proto(gate_pb2.IntentStatus, number, IntentStatus)


def origin_from_proto(number: int) -> IntentOrigin | None:
    return enum_from_proto(gate_pb2.IntentOrigin, number, IntentOrigin)


def type_from_proto(number: int) -> MessageType | None:
    return enum_from_proto(common_pb2.MessageType, number, MessageType)


def purpose_from_proto(number: int) -> Purpose | None:
    return enum_from_proto(common_pb2.Purpose, number, Purpose)


def timestamp_or_none(message: Message, name: str) -> datetime | None:
    return from_timestamp(getattr(message, name), present=message.HasField(name), field=name)


__all__ = ["DecisionOutcome", "DecisionReason", "Verdict"]
