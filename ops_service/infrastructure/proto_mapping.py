"""Domain ↔ protobuf for the ops context: the events it publishes and the messages its RPCs answer with."""

from __future__ import annotations

from google.protobuf.message import Message

from libs.messaging.event_meta import event_meta
from libs.rpc.convert import enum_to_proto, to_timestamp
from libs.rpc.roles import role_to_proto
from libs.seedwork.aggregate import DomainEvent
from ops_service.domain import events, intent_changes
from ops_service.domain.api_key import ApiKey
from ops_service.domain.audit import AuditEntry
from ops_service.domain.control import ExecutionControl
from ops_service.domain.organization import Member, Organization
from ops_service.domain.plan import Plan
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import ops_events_pb2
from whatlead.gate.v1 import gate_pb2
from whatlead.ops.v1 import ops_pb2


def organization_to_proto(organization: Organization) -> ops_pb2.Organization:
    return ops_pb2.Organization(
        id=organization.id, name=organization.name, created_at=to_timestamp(organization.created_at)
    )


def member_to_proto(member: Member) -> ops_pb2.Member:
    return ops_pb2.Member(
        organization_id=member.organization_id,
        user_id=member.user_id,
        role=role_to_proto(member.role),
        created_at=to_timestamp(member.created_at),
    )


def api_key_to_proto(key: ApiKey) -> ops_pb2.ApiKey:
    """The key's metadata: never its secret, never its hash."""
    return ops_pb2.ApiKey(
        id=key.id,
        organization_id=key.organization_id,
        name=key.name,
        role=role_to_proto(key.role),
        prefix=key.prefix,
        created_at=to_timestamp(key.created_at),
        revoked_at=to_timestamp(key.revoked_at),
        created_by=key.created_by,
    )


def key_record(key: ApiKey) -> ops_events_pb2.ApiKeyCreated:
    """The key directory's entry for a key (libs.messaging.key_directory): its current metadata and hash."""
    return ops_events_pb2.ApiKeyCreated(api_key=api_key_to_proto(key), secret_sha256=key.secret_sha256)


def control_to_proto(control: ExecutionControl) -> ops_pb2.ExecutionControl:
    return ops_pb2.ExecutionControl(
        organization_id=control.organization_id,
        scope=enum_to_proto(ops_pb2.ControlScope, control.scope),
        scope_id=control.scope_id,
        status=enum_to_proto(ops_pb2.ControlStatus, control.status),
        reason=enum_to_proto(ops_pb2.ControlReason, control.reason),
        note=control.note,
        paused_until=to_timestamp(control.paused_until),
        actor=control.actor,
        updated_at=to_timestamp(control.updated_at),
        version=control.version,
    )


def plan_to_proto(plan: Plan) -> ops_pb2.Plan:
    return ops_pb2.Plan(
        organization_id=plan.organization_id,
        name=plan.name,
        limits=ops_pb2.PlanLimits(
            daily_message_cap=plan.limits.daily_message_cap,
            monthly_message_cap=plan.limits.monthly_message_cap,
            max_instances=plan.limits.max_instances,
        ),
        updated_at=to_timestamp(plan.updated_at),
        version=plan.version,
    )


def audit_entry_to_proto(entry: AuditEntry) -> ops_pb2.AuditEntry:
    return ops_pb2.AuditEntry(
        id=entry.id,
        organization_id=entry.organization_id,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        summary=entry.summary,
        occurred_at=to_timestamp(entry.occurred_at),
    )


def _meta(event: events.OpsEvent) -> common_pb2.EventMeta:
    meta = event_meta(event)
    meta.actor = event.actor
    return meta


def event_to_proto(event: DomainEvent) -> Message:
    match event:
        case events.ExecutionControlChanged():
            return ops_events_pb2.ExecutionControlChanged(
                meta=_meta(event),
                control=control_to_proto(event.control),
                previous_status=enum_to_proto(ops_pb2.ControlStatus, event.previous_status),
            )
        case events.PlanChanged():
            return ops_events_pb2.PlanChanged(meta=_meta(event), plan=plan_to_proto(event.plan))
        case events.OrganizationCreated():
            return ops_events_pb2.OrganizationCreated(
                meta=_meta(event), organization=organization_to_proto(event.organization)
            )
        case events.MemberAdded():
            return ops_events_pb2.MemberAdded(meta=_meta(event), member=member_to_proto(event.member))
        case events.ApiKeyCreated():
            return ops_events_pb2.ApiKeyCreated(
                meta=_meta(event),
                api_key=api_key_to_proto(event.api_key),
                secret_sha256=event.api_key.secret_sha256,
            )
        case events.ApiKeyRevoked():
            return ops_events_pb2.ApiKeyRevoked(meta=_meta(event), api_key=api_key_to_proto(event.api_key))
        case intent_changes.IntentChanged():
            meta = event_meta(event)
            meta.causation_id = event.source_event_id
            return ops_events_pb2.IntentChanged(meta=meta, change=intent_change_to_proto(event))
    raise TypeError(f"no protobuf mapping for {type(event).__name__}")


def intent_change_to_proto(change: intent_changes.IntentChanged) -> ops_pb2.IntentChange:
    return ops_pb2.IntentChange(
        organization_id=change.organization_id,
        intent_id=change.intent_id,
        campaign_id=change.campaign_id,
        kind=enum_to_proto(ops_pb2.IntentChangeKind, change.kind),
        occurred_at=to_timestamp(change.occurred_at),
        instance_id=change.instance_id,
        reason=_reason(change.reason),
        summary=change.summary,
        event_id=change.source_event_id,
        event_type=change.source_event_type,
        provider_message_id=change.provider_message_id,
    )


def _reason(name: str) -> gate_pb2.DecisionReason.ValueType:
    """The Gate's reason by its name as the timeline keeps it; UNSPECIFIED for none (or one unknown)."""
    if not name:
        return gate_pb2.DECISION_REASON_UNSPECIFIED
    try:
        return gate_pb2.DecisionReason.Value(f"DECISION_REASON_{name}")
    except ValueError:
        return gate_pb2.DECISION_REASON_UNSPECIFIED
