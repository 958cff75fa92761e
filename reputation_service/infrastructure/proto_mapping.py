"""Domain <-> protobuf for the reputation context: used by the gRPC servicer and the event mapper alike."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from libs.messaging.event_meta import event_meta
from libs.rpc.convert import enum_prefix, enum_to_proto, to_timestamp
from libs.seedwork.aggregate import DomainEvent
from reputation_service.application.connect_instance import InstanceConnection
from reputation_service.domain.evaluation import ReputationState
from reputation_service.domain.events import (
    CooldownStarted,
    InstanceChanged,
    InstanceRegistered,
    ReputationEvaluated,
)
from reputation_service.domain.instance import Instance
from reputation_service.domain.ports import InstanceReputation
from reputation_service.domain.signals import WindowCounts
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import reputation_events_pb2
from whatlead.reputation.v1 import reputation_pb2


def instance_to_proto(instance: Instance) -> reputation_pb2.Instance:
    return reputation_pb2.Instance(
        id=instance.id,
        organization_id=instance.organization_id,
        display_name=instance.display_name,
        provider=enum_to_proto(common_pb2.Provider, instance.provider),
        provider_instance_ref=instance.provider_instance_ref,
        phone=instance.phone,
        purposes=[enum_to_proto(common_pb2.Purpose, p) for p in sorted(instance.purposes)],
        connection_state=enum_to_proto(common_pb2.ConnectionState, instance.connection_state),
        created_at=to_timestamp(instance.created_at),
        updated_at=to_timestamp(instance.updated_at),
        version=instance.version,
        provider_version=instance.provider_version,
        provider_engine=enum_to_proto(common_pb2.ProviderEngine, instance.provider_engine),
    )


def window_counts_to_proto(counts: WindowCounts) -> reputation_pb2.WindowStats:
    return reputation_pb2.WindowStats(
        instance_id=counts.instance_id,
        window_start=to_timestamp(counts.window_start),
        window_end=to_timestamp(counts.window_end),
        sent=counts.sent,
        delivered=counts.delivered,
        read=counts.read,
        replied=counts.replied,
        received=counts.received,
        failed=counts.failed,
        ack_timeouts=counts.ack_timeouts,
        disconnects=counts.disconnects,
        connection_errors=counts.connection_errors,
        delivery_rate=counts.delivery_rate,
        read_rate=counts.read_rate,
        reply_rate=counts.reply_rate,
        avg_send_latency_ms=counts.avg_send_latency_ms,
        p95_send_latency_ms=counts.p95_send_latency_ms,
    )


def state_to_proto(
    instance_id: str, organization_id: str, state: ReputationState
) -> reputation_pb2.InstanceReputation:
    cooling = state.cooldown_until is not None
    return reputation_pb2.InstanceReputation(
        instance_id=instance_id,
        organization_id=organization_id,
        score=state.score,
        health=enum_to_proto(reputation_pb2.HealthStatus, state.health),
        phase=enum_to_proto(reputation_pb2.WarmupPhase, state.phase),
        cooldown_until=to_timestamp(state.cooldown_until) if cooling else None,
        cooldown_reason=enum_to_proto(reputation_pb2.CooldownReason, state.cooldown_reason),
        alerts=[enum_to_proto(reputation_pb2.ReputationAlert, alert) for alert in state.alerts],
        evaluated_at=to_timestamp(state.evaluated_at) if state.evaluated_at else None,
        version=state.version,
    )


def reputation_to_proto(reputation: InstanceReputation) -> reputation_pb2.InstanceReputation:
    return state_to_proto(reputation.instance_id, reputation.organization_id, reputation.state)


def _named(proto_enum: Any, name: object) -> Any:
    """A stored enum name as the contract's number; 0 (UNSPECIFIED) for none or one it does not know."""
    if not isinstance(name, str) or not name:
        return 0
    try:
        return int(proto_enum.Value(enum_prefix(proto_enum) + name))
    except ValueError:
        return 0


def _stamp(value: object) -> Any:
    return to_timestamp(datetime.fromisoformat(value)) if isinstance(value, str) and value else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def explanation_to_proto(stored: Mapping[str, Any]) -> reputation_pb2.ReputationExplanation:
    """The stored explanation (Explanation.as_dict) as the contract's message."""
    phase = stored.get("phase") or {}
    cooldown = stored.get("cooldown")
    return reputation_pb2.ReputationExplanation(
        evaluation_version=int(stored.get("evaluation_version") or 0),
        evaluated_at=_stamp(stored.get("evaluated_at")),
        trigger=str(stored.get("trigger") or ""),
        previous_score=int(stored.get("previous_score") or 0),
        score=int(stored.get("score") or 0),
        terms=[
            reputation_pb2.ScoreTerm(
                name=str(term.get("name", "")),
                contribution=int(term.get("contribution", 0)),
                measured=_number(term.get("measured")),
                detail=str(term.get("detail", "")),
            )
            for term in stored.get("terms") or ()
        ],
        alert_checks=[
            reputation_pb2.AlertCheck(
                alert=_named(reputation_pb2.ReputationAlert, check.get("alert")),
                metric=str(check.get("metric", "")),
                window=str(check.get("window", "")),
                measured=_number(check.get("measured")),
                volume=int(check.get("volume", 0)),
                min_volume=int(check.get("min_volume", 0)),
                review=float(check.get("review", 0)),
                pause=_number(check.get("pause")),
                lower_is_worse=bool(check.get("lower_is_worse")),
                level=_named(reputation_pb2.AlertLevel, check.get("level")),
            )
            for check in stored.get("alert_checks") or ()
        ],
        health=_named(reputation_pb2.HealthStatus, stored.get("health")),
        health_reason=str(stored.get("health_reason") or ""),
        phase=reputation_pb2.PhaseDecision(
            previous=_named(reputation_pb2.WarmupPhase, phase.get("previous")),
            phase=_named(reputation_pb2.WarmupPhase, phase.get("phase")),
            change=_named(reputation_pb2.PhaseChange, phase.get("change")),
            reason=str(phase.get("reason", "")),
            criteria=[
                reputation_pb2.PhaseCriterion(
                    name=str(c.get("name", "")),
                    measured=float(c.get("measured") or 0),
                    required=float(c.get("required") or 0),
                    met=bool(c.get("met")),
                )
                for c in phase.get("criteria") or ()
            ],
        ),
        cooldown=(
            reputation_pb2.CooldownDecision(
                reason=_named(reputation_pb2.CooldownReason, cooldown.get("reason")),
                started_at=_stamp(cooldown.get("started_at")),
                until=_stamp(cooldown.get("until")),
                step=int(cooldown.get("step", 0)),
                restriction_kind=_named(common_pb2.RestrictionKind, cooldown.get("restriction")),
                alerts=[_named(reputation_pb2.ReputationAlert, a) for a in cooldown.get("alerts") or ()],
                cause=str(cooldown.get("cause", "")),
                extended=bool(cooldown.get("extended")),
            )
            if isinstance(cooldown, dict)
            else None
        ),
        cooldown_note=str(stored.get("cooldown_note") or ""),
    )


def event_to_proto(event: DomainEvent) -> Message:
    """The outbox's mapper: every event this context publishes, as its protobuf contract."""
    match event:
        case InstanceRegistered():
            return reputation_events_pb2.InstanceRegistered(
                meta=event_meta(event), instance=instance_to_proto(event.instance)
            )
        case InstanceChanged():
            return reputation_events_pb2.InstanceChanged(
                meta=event_meta(event),
                instance=instance_to_proto(event.instance),
                changed_fields=list(event.changed_fields),
            )
        case ReputationEvaluated():
            return reputation_events_pb2.ReputationEvaluated(
                meta=event_meta(event),
                reputation=state_to_proto(event.aggregate_id, event.organization_id, event.state),
                previous_score=event.previous_score if event.previous_score is not None else 0,
                previous_health=enum_to_proto(reputation_pb2.HealthStatus, event.previous_health),
                previous_phase=enum_to_proto(reputation_pb2.WarmupPhase, event.previous_phase),
            )
        case CooldownStarted():
            cooldown = event.cooldown
            return reputation_events_pb2.CooldownStarted(
                meta=event_meta(event),
                instance_id=event.aggregate_id,
                cooldown_until=to_timestamp(cooldown.until),
                reason=enum_to_proto(reputation_pb2.CooldownReason, cooldown.reason),
                restriction_kind=enum_to_proto(common_pb2.RestrictionKind, cooldown.restriction),
                alerts=[enum_to_proto(reputation_pb2.ReputationAlert, alert) for alert in cooldown.alerts],
            )
    raise TypeError(f"no protobuf contract for {type(event).__name__}")


def connection_to_proto(connection: InstanceConnection) -> reputation_pb2.InstanceConnection:
    qr = connection.qr
    return reputation_pb2.InstanceConnection(
        instance_id=connection.instance.id,
        state=enum_to_proto(common_pb2.ConnectionState, connection.state),
        reason=connection.reason,
        qr=reputation_pb2.QrCode(code=qr.code, png=qr.png) if qr is not None else None,
        pairing_code=connection.pairing_code,
        observed_at=to_timestamp(connection.observed_at),
    )
