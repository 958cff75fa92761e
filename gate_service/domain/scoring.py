"""InstanceDispatchScoreService: ranks the candidates that may send. Kept apart from the decision so the
ranking can change (or learn) without touching the rules."""

from __future__ import annotations

from dataclasses import dataclass

from gate_service.domain.policies import HealthStatus, WarmupPhase
from libs.seedwork.shared_kernel import ConnectionState


@dataclass(slots=True, kw_only=True)
class ScoreInput:
    reputation_score: int  # 0..100, higher = lower risk
    health: HealthStatus
    phase: WarmupPhase
    connection_state: ConnectionState
    rate_pressure: float  # 0..1
    sticky: bool


@dataclass(frozen=True)
class ScoreWeights:
    """Sticky dominates: a conversation stays on its number whenever that number may send. Then lower
    risk, better connection and lower rate pressure, in that order of weight."""

    sticky: float = 10.0
    risk: float = 3.0
    health: float = 2.0
    connection: float = 1.0
    pressure: float = 2.0
    phase: float = 0.5


_HEALTH = {HealthStatus.HEALTHY: 1.0, HealthStatus.DEGRADED: 0.4, HealthStatus.UNHEALTHY: 0.0}
_CONNECTION = {ConnectionState.CONNECTED: 1.0}
_PHASE = {
    WarmupPhase.NEWBORN: 0.0,
    WarmupPhase.WARMING: 0.33,
    WarmupPhase.INTERACTING: 0.66,
    WarmupPhase.STABLE: 1.0,
}


class InstanceDispatchScoreService:
    def __init__(self, weights: ScoreWeights | None = None) -> None:
        self.weights = weights or ScoreWeights()

    def score(self, candidate: ScoreInput) -> float:
        w = self.weights
        return round(
            w.sticky * (1.0 if candidate.sticky else 0.0)
            + w.risk * max(0, min(100, candidate.reputation_score)) / 100
            + w.health * _HEALTH[candidate.health]
            + w.connection * _CONNECTION.get(candidate.connection_state, 0.0)
            + w.pressure * (1.0 - max(0.0, min(1.0, candidate.rate_pressure)))
            + w.phase * _PHASE[candidate.phase],
            6,
        )
