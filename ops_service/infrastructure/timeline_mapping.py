"""Every context's events -> the timeline facts ops records (protobuf stays here; the domain reads facts)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from libs.messaging import envelope
from libs.rpc.convert import from_timestamp
from libs.seedwork.errors import InvalidArgument
from ops_service.domain.timeline import (
    AttemptEnded,
    CandidateVerdict,
    ControlChanged,
    CooldownStarted,
    DeliveryChanged,
    Fact,
    IntentClosed,
    IntentDecided,
    IntentSubmitted,
    OtherFact,
    ProviderReported,
    Recorded,
    TimelineRecord,
    record_of,
)
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import (
    executor_events_pb2,
    gate_events_pb2,
    ops_events_pb2,
    provider_events_pb2,
    reputation_events_pb2,
)
from whatlead.executor.v1 import executor_pb2
from whatlead.gate.v1 import gate_pb2
from whatlead.ops.v1 import ops_pb2
from whatlead.reputation.v1 import reputation_pb2

# Every event type of each context's stream: ops records them all.
EVENT_MODULES = {
    "gate": gate_events_pb2,
    "executor": executor_events_pb2,
    "reputation": reputation_events_pb2,
    "ops": ops_events_pb2,
    "gateway": provider_events_pb2,
}


# Ops' own account of the facts, not a fact: recording it would repeat each change in the intent's timeline.
NOT_FACTS = frozenset({ops_events_pb2.IntentChanged.DESCRIPTOR.full_name})


def event_types(context: str) -> list[type[Message]]:
    module = EVENT_MODULES[context]
    return [
        getattr(module, name)
        for name, descriptor in module.DESCRIPTOR.message_types_by_name.items()
        if "meta" in descriptor.fields_by_name and descriptor.full_name not in NOT_FACTS
    ]


def _name(enum: object, value: int, prefix: str) -> str:
    """An enum value's name without its prefix; "" for UNSPECIFIED (or a value this build does not know)."""
    try:
        name = str(enum.Name(value))  # type: ignore[attr-defined]
    except ValueError:
        return str(value)
    name = name.removeprefix(prefix)
    return "" if name == "UNSPECIFIED" else name


def _time(stamp: Timestamp, present: bool = True) -> datetime | None:
    if not present:
        return None
    try:
        return from_timestamp(stamp)
    except InvalidArgument:
        return None


def _provider(value: int) -> str:
    return _name(common_pb2.Provider, value, "PROVIDER_")


def _error(error: executor_pb2.JobError) -> tuple[str, str]:
    return _name(executor_pb2.ErrorClass, error.error_class, "ERROR_CLASS_"), error.code


def _phone_of(jid: str) -> str:
    """The digits of a person's chat; "" for a group or an id that is not a phone (@lid)."""
    user, _, server = jid.partition("@")
    return user if server in ("s.whatsapp.net", "c.us") and user.isdigit() else ""


def _decision(
    intent_id: str,
    outcome: str,
    decision: gate_pb2.DecisionRecord,
    *,
    reason: int = 0,
    provider: int = 0,
    campaign_id: str = "",
    instance_id: str = "",
    target: str = "",
) -> IntentDecided:
    return IntentDecided(
        intent_id=intent_id,
        outcome=outcome,
        reason=_name(gate_pb2.DecisionReason, reason or decision.reason, "DECISION_REASON_"),
        attempt=decision.attempt or 1,
        instance_id=instance_id or decision.chosen_instance_id,
        provider=_provider(provider),
        campaign_id=campaign_id,
        queued_until=_time(decision.queued_until, decision.HasField("queued_until")),
        target=target,
        candidates=tuple(
            CandidateVerdict(
                instance_id=c.instance_id,
                verdict=_name(gate_pb2.Verdict, c.verdict, "VERDICT_"),
                reason=_name(gate_pb2.DecisionReason, c.reason, "DECISION_REASON_"),
                score=c.score,
                rate_pressure=c.rate_pressure,
            )
            for c in decision.candidates
        ),
    )


def fact_of(event: Message, occurred_at: datetime) -> Fact:
    g, x, r, o, p = (
        gate_events_pb2,
        executor_events_pb2,
        reputation_events_pb2,
        ops_events_pb2,
        provider_events_pb2,
    )
    match event:
        case g.IntentCreated():
            intent = event.intent
            return IntentSubmitted(
                intent_id=intent.id,
                target=intent.target.value,
                purpose=_name(common_pb2.Purpose, intent.purpose, "PURPOSE_"),
                message_type=_name(common_pb2.MessageType, intent.type, "MESSAGE_TYPE_"),
                campaign_id=intent.campaign_id,
                pinned_instance_id=intent.pinned_instance_id,
            )
        case g.IntentApproved():
            return _decision(
                event.intent_id,
                "APPROVED",
                event.decision,
                provider=event.provider,
                campaign_id=event.campaign_id,
                instance_id=event.instance_id,
                target=event.target.value,
            )
        case g.IntentQueued():
            return _decision(event.intent_id, "QUEUED", event.decision, reason=event.reason)
        case g.IntentBlocked():
            return _decision(event.intent_id, "BLOCKED", event.decision, reason=event.reason)
        case g.IntentDropped():
            return _decision(event.intent_id, "DROPPED", event.decision, reason=event.reason)
        case g.IntentSent():
            return IntentClosed(
                intent_id=event.intent_id,
                sent=True,
                instance_id=event.instance_id,
                provider_message_id=event.provider_message_id,
                error_class="",
                error_code="",
                at=_time(event.sent_at, event.HasField("sent_at")) or occurred_at,
            )
        case g.IntentFailed():
            error_class, code = _error(event.error)
            return IntentClosed(
                intent_id=event.intent_id,
                sent=False,
                instance_id=event.instance_id,
                provider_message_id="",
                error_class=error_class,
                error_code=code,
                at=_time(event.failed_at, event.HasField("failed_at")) or occurred_at,
            )
        case x.MessageSent():
            return AttemptEnded(
                intent_id=event.intent_id,
                job_id=event.job_id,
                outcome="SENT",
                instance_id=event.instance_id,
                provider=_provider(event.provider),
                campaign_id=event.campaign_id,
                attempt=event.attempts,
                started_at=_time(event.attempt_started_at, event.HasField("attempt_started_at")),
                ended_at=_time(event.sent_at, event.HasField("sent_at")) or occurred_at,
                provider_message_id=event.provider_message_id,
            )
        case x.MessageFailed():
            error_class, code = _error(event.error)
            return AttemptEnded(
                intent_id=event.intent_id,
                job_id=event.job_id,
                outcome="FAILED",
                instance_id=event.instance_id,
                provider=_provider(event.provider),
                campaign_id=event.campaign_id,
                attempt=event.attempts,
                started_at=_time(event.attempt_started_at, event.HasField("attempt_started_at")),
                ended_at=_time(event.failed_at, event.HasField("failed_at")) or occurred_at,
                error_class=error_class,
                error_code=code,
            )
        case x.MessageRetryScheduled():
            error_class, code = _error(event.error)
            return AttemptEnded(
                intent_id=event.intent_id,
                job_id=event.job_id,
                outcome="RETRY",
                instance_id=event.instance_id,
                provider=_provider(event.provider),
                campaign_id="",
                attempt=event.attempt,
                started_at=_time(event.attempt_started_at, event.HasField("attempt_started_at")),
                ended_at=occurred_at,
                error_class=error_class,
                error_code=code,
                next_attempt_at=_time(event.next_attempt_at, event.HasField("next_attempt_at")),
                retried_by=event.actor,
            )
        case x.MessageNeedsReview():
            error_class, code = _error(event.error)
            return AttemptEnded(
                intent_id=event.intent_id,
                job_id=event.job_id,
                outcome="NEEDS_REVIEW",
                instance_id=event.instance_id,
                provider=_provider(event.provider),
                campaign_id="",
                attempt=event.attempts,
                started_at=_time(event.attempt_started_at, event.HasField("attempt_started_at")),
                ended_at=occurred_at,
                error_class=error_class,
                error_code=code,
            )
        case x.MessageDeliveryStatusChanged():
            return DeliveryChanged(
                intent_id=event.intent_id,
                instance_id=event.instance_id,
                status=_name(executor_pb2.DeliveryStatus, event.status, "DELIVERY_STATUS_"),
                at=_time(event.status_at, event.HasField("status_at")) or occurred_at,
            )
        case p.ProviderEventReceived():
            return ProviderReported(
                kind=_name(p.ProviderEventType, event.type, "PROVIDER_EVENT_TYPE_"),
                instance_id=event.instance_id,
                provider=_provider(event.provider),
                provider_message_id=event.provider_message_id,
                remote_phone=_phone_of(event.remote_jid),
                from_me=event.from_me,
                text=event.text,
                reply_to_provider_message_id=event.reply_to_provider_message_id,
            )
        case r.CooldownStarted():
            return CooldownStarted(
                instance_id=event.instance_id,
                until=_time(event.cooldown_until, event.HasField("cooldown_until")),
                reason=_name(reputation_pb2.CooldownReason, event.reason, "COOLDOWN_REASON_"),
            )
        case o.ExecutionControlChanged():
            control = event.control
            return ControlChanged(
                scope=_name(ops_pb2.ControlScope, control.scope, "CONTROL_SCOPE_"),
                scope_id=control.scope_id,
                status=_name(ops_pb2.ControlStatus, control.status, "CONTROL_STATUS_"),
                reason=_name(ops_pb2.ControlReason, control.reason, "CONTROL_REASON_"),
                note=control.note,
                until=_time(control.paused_until, control.HasField("paused_until")),
            )
    return OtherFact(description=_other_line(event))


def _other_line(event: Message) -> str:
    name = event.DESCRIPTOR.name
    words = "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip()
    return words[:1].upper() + words[1:]


def record_from_event(event: Message) -> TimelineRecord:
    """The stored row of any context's event."""
    meta = envelope.meta_of(event) or common_pb2.EventMeta()
    occurred_at = _time(meta.occurred_at, meta.HasField("occurred_at"))
    if occurred_at is None:
        raise InvalidArgument.of(
            "meta.occurred_at", "an event without its time cannot be placed in a timeline"
        )
    recorded = Recorded(
        event_id=meta.event_id,
        type_name=event.DESCRIPTOR.full_name,
        subject=envelope.subject_suffix(event),
        organization_id=meta.organization_id,
        aggregate_id=meta.aggregate_id,
        correlation_id=meta.correlation_id,
        occurred_at=occurred_at,
        actor=meta.actor,
        payload=event.SerializeToString(),
    )
    return record_of(recorded, fact_of(event, occurred_at))
