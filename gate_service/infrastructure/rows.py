"""Domain <-> rows: one mapping shared by the session repositories and the group-commit writer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from gate_service.domain.decision import (
    CandidateVerdict,
    DecisionOutcome,
    DecisionReason,
    DecisionRecord,
    Verdict,
)
from gate_service.domain.intent import (
    AudioPayload,
    IntentOrigin,
    IntentStatus,
    MediaPayload,
    MessageIntent,
    Payload,
    ReactionPayload,
    Target,
    TextPayload,
)
from gate_service.domain.policies import HealthStatus, WarmupPhase
from gate_service.domain.projection import InstanceState, Plan
from libs.seedwork.shared_kernel import (
    ConnectionState,
    MessageType,
    Provider,
    Purpose,
    TargetKind,
)


def intent_row(intent: MessageIntent, now: datetime) -> dict[str, Any]:
    row = intent_record(intent, now)
    if row["decision"] is not None:
        row["decision"] = orjson.dumps(row["decision"]).decode()  # the column holds its text
    return row


def intent_record(intent: MessageIntent, now: datetime) -> dict[str, Any]:
    """The row with the decision as a JSON document rather than its text: embedded as is in a JSON batch
    (the PostgreSQL write path), it is encoded once instead of twice."""
    return {
        "id": intent.id,
        "organization_id": intent.organization_id,
        "target_kind": intent.target.kind.value,
        "target_value": intent.target.value,
        "type": intent.type.value,
        "purpose": intent.purpose.value,
        "origin": intent.origin.value,
        "campaign_id": intent.campaign_id,
        "payload": orjson.dumps(vars(intent.payload)).decode(),
        "idempotency_key": intent.idempotency_key or None,
        "request_hash": intent.request_hash,
        "status": intent.status.value,
        "decided_by_instance_id": intent.decided_by_instance_id,
        "status_reason": intent.status_reason.value if intent.status_reason else None,
        "queued_until": intent.queued_until,
        "not_before": intent.not_before,
        "expires_at": intent.expires_at,
        "created_at": intent.created_at,
        "decided_at": intent.decided_at,
        "updated_at": now,
        "attempts": intent.attempts,
        "decision": decision_document(intent.decision) if intent.decision else None,
        "version": intent.version,
        "pinned_instance_id": intent.pinned_instance_id,
    }


_PAYLOADS: dict[MessageType, type] = {
    MessageType.TEXT: TextPayload,
    MessageType.AUDIO: AudioPayload,
    MessageType.MEDIA: MediaPayload,
    MessageType.REACTION: ReactionPayload,
}


def row_intent(row: Any) -> MessageIntent:
    type_ = MessageType(row.type)
    payload: Payload = _PAYLOADS[type_](**orjson.loads(row.payload))
    return MessageIntent(
        id=row.id,
        organization_id=row.organization_id,
        target=Target(TargetKind(row.target_kind), row.target_value),
        type=type_,
        purpose=Purpose(row.purpose),
        origin=IntentOrigin(row.origin),
        campaign_id=row.campaign_id,
        payload=payload,
        idempotency_key=row.idempotency_key or "",
        request_hash=row.request_hash,
        status=IntentStatus(row.status),
        decided_by_instance_id=row.decided_by_instance_id,
        status_reason=DecisionReason(row.status_reason) if row.status_reason else None,
        queued_until=row.queued_until,
        not_before=row.not_before,
        expires_at=row.expires_at,
        created_at=row.created_at,
        decided_at=row.decided_at,
        decision=decision_from_json(row.decision) if row.decision else None,
        attempts=row.attempts,
        version=row.version,
        pinned_instance_id=row.pinned_instance_id,
    )


def _ts(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment else None


def _dt(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


def decision_document(record: DecisionRecord) -> dict[str, Any]:
    return {
        "o": record.outcome.value,
        "r": record.reason.value if record.reason else None,
        "at": _ts(record.decided_at),
        "n": record.attempt,
        "i": record.chosen_instance_id,
        "q": _ts(record.queued_until),
        "x": {reason.value: count for reason, count in record.excluded.items()},
        "c": [
            [
                c.instance_id,
                c.verdict.value,
                c.reason.value if c.reason else None,
                _ts(c.retry_at),
                c.score,
                c.reputation_score,
                c.health.value if c.health else None,
                c.phase.value if c.phase else None,
                c.rate_pressure,
                c.sticky,
            ]
            for c in record.candidates
        ],
        "id": record.intent_id,
        "p": record.pinned_instance_id,
    }


def decision_from_json(text: str) -> DecisionRecord:
    data = orjson.loads(text)
    return DecisionRecord(
        intent_id=data["id"],
        outcome=DecisionOutcome(data["o"]),
        reason=DecisionReason(data["r"]) if data["r"] else None,
        decided_at=datetime.fromtimestamp(data["at"], UTC),
        attempt=data["n"],
        chosen_instance_id=data["i"],
        queued_until=_dt(data["q"]),
        excluded={DecisionReason(k): v for k, v in data["x"].items()},
        pinned_instance_id=data.get("p"),  # absent from the records written before pins existed
        candidates=tuple(
            CandidateVerdict(
                instance_id=c[0],
                verdict=Verdict(c[1]),
                reason=DecisionReason(c[2]) if c[2] else None,
                retry_at=_dt(c[3]),
                score=c[4],
                reputation_score=c[5],
                health=HealthStatus(c[6]) if c[6] else None,
                phase=WarmupPhase(c[7]) if c[7] else None,
                rate_pressure=c[8],
                sticky=c[9],
            )
            for c in data["c"]
        ),
    )


def instance_row(state: InstanceState, changed_at: datetime) -> dict[str, Any]:
    return {
        "instance_id": state.instance_id,
        "organization_id": state.organization_id,
        "provider": state.provider.value,
        "provider_instance_ref": state.provider_instance_ref,
        "purposes": ",".join(sorted(p.value for p in state.purposes)),
        "connection_state": state.connection_state.value,
        "instance_version": state.instance_version,
        "score": state.score,
        "health": state.health.value if state.health else None,
        "phase": state.phase.value if state.phase else None,
        "cooldown_until": state.cooldown_until,
        "reputation_version": state.reputation_version,
        "changed_at": changed_at,
        "phone": state.phone,
    }


def row_instance(row: Any) -> InstanceState:
    return InstanceState(
        instance_id=row.instance_id,
        organization_id=row.organization_id,
        provider=Provider(row.provider),
        provider_instance_ref=row.provider_instance_ref,
        purposes=frozenset(Purpose(p) for p in row.purposes.split(",") if p),
        connection_state=ConnectionState(row.connection_state),
        instance_version=row.instance_version,
        score=row.score,
        health=HealthStatus(row.health) if row.health else None,
        phase=WarmupPhase(row.phase) if row.phase else None,
        cooldown_until=row.cooldown_until,
        reputation_version=row.reputation_version,
        phone=row.phone,
    )


def plan_row(plan: Plan, changed_at: datetime) -> dict[str, Any]:
    return {
        "organization_id": plan.organization_id,
        "daily_cap": plan.daily_cap,
        "monthly_cap": plan.monthly_cap,
        "version": plan.version,
        "changed_at": changed_at,
    }


def row_plan(row: Any) -> Plan:
    return Plan(
        organization_id=row.organization_id,
        daily_cap=row.daily_cap,
        monthly_cap=row.monthly_cap,
        version=row.version,
    )
