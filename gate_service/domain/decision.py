"""The vocabulary of a decision: semantic reasons, candidate verdicts and the decision record."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gate_service.domain.policies import HealthStatus, WarmupPhase


class DecisionReason(StrEnum):
    COOLDOWN_ACTIVE = "COOLDOWN_ACTIVE"
    RATE_LIMIT = "RATE_LIMIT"
    PLAN_LIMIT = "PLAN_LIMIT"
    INSTANCE_UNHEALTHY = "INSTANCE_UNHEALTHY"
    INSTANCE_DISCONNECTED = "INSTANCE_DISCONNECTED"
    NO_ELIGIBLE_INSTANCE = "NO_ELIGIBLE_INSTANCE"
    OPS_PAUSED = "OPS_PAUSED"
    EXPIRED = "EXPIRED"
    CONTACT_RATE_LIMIT = "CONTACT_RATE_LIMIT"
    CONTACT_MIN_INTERVAL = "CONTACT_MIN_INTERVAL"
    PURPOSE_NOT_ALLOWED = "PURPOSE_NOT_ALLOWED"
    TYPE_NOT_ALLOWED_IN_PHASE = "TYPE_NOT_ALLOWED_IN_PHASE"
    MIN_INTERVAL = "MIN_INTERVAL"
    NOT_BEFORE = "NOT_BEFORE"
    # The instance's own phone is the target: a number never sends to itself, whatever the purpose.
    SELF_TARGET = "SELF_TARGET"


# When several final reasons tie, the one an operator must act on first wins.
SEVERITY = [
    DecisionReason.OPS_PAUSED,
    DecisionReason.INSTANCE_UNHEALTHY,
    DecisionReason.INSTANCE_DISCONNECTED,
    DecisionReason.PURPOSE_NOT_ALLOWED,
    DecisionReason.TYPE_NOT_ALLOWED_IN_PHASE,
    DecisionReason.SELF_TARGET,
    DecisionReason.COOLDOWN_ACTIVE,
    DecisionReason.RATE_LIMIT,
    DecisionReason.MIN_INTERVAL,
    DecisionReason.NO_ELIGIBLE_INSTANCE,
]


class Verdict(StrEnum):
    ALLOW = "ALLOW"
    RECOVERABLE = "RECOVERABLE"  # refused until retry_at
    FINAL = "FINAL"  # refused; waiting would not help


class DecisionOutcome(StrEnum):
    APPROVED = "APPROVED"
    QUEUED = "QUEUED"
    BLOCKED = "BLOCKED"
    DROPPED = "DROPPED"


@dataclass(frozen=True, kw_only=True)
class CandidateVerdict:
    instance_id: str
    verdict: Verdict
    reason: DecisionReason | None = None
    retry_at: datetime | None = None
    score: float = 0.0
    reputation_score: int = 0
    health: HealthStatus | None = None
    phase: WarmupPhase | None = None
    rate_pressure: float = 0.0
    sticky: bool = False


@dataclass(frozen=True, kw_only=True)
class DecisionRecord:
    """Why an intent got its outcome: every evaluated candidate with its verdict and score, plus how many
    of the organization's other instances were left out and why (bounded evaluation, ADR 0010)."""

    intent_id: str
    outcome: DecisionOutcome
    reason: DecisionReason | None
    decided_at: datetime
    attempt: int
    chosen_instance_id: str | None = None
    queued_until: datetime | None = None
    candidates: tuple[CandidateVerdict, ...] = ()
    excluded: dict[DecisionReason, int] = field(default_factory=dict)
    # The intent was pinned to this instance: it was the only candidate, whatever the others' state.
    pinned_instance_id: str | None = None
