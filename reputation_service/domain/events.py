"""What the instance registry announces; infrastructure maps each to its protobuf contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from libs.seedwork.aggregate import DomainEvent
from reputation_service.domain.evaluation import (
    CooldownDecision,
    HealthStatus,
    ReputationState,
)
from reputation_service.domain.warmup import WarmupPhase

if TYPE_CHECKING:
    from reputation_service.domain.instance import Instance


@dataclass(frozen=True, kw_only=True)
class InstanceRegistered(DomainEvent):
    """A number joined an organization's registry; `instance` is its state right after."""

    instance: Instance


@dataclass(frozen=True, kw_only=True)
class InstanceChanged(DomainEvent):
    """Fields of an instance changed; `instance` is its whole state after the change."""

    instance: Instance
    changed_fields: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ReputationEvaluated(DomainEvent):
    """An evaluation moved what other contexts see (score, health, phase, cooldown or alerts); `state` is
    the reputation after it, the previous_* fields what it was before (None: a new number's first state)."""

    state: ReputationState
    previous_score: int | None
    previous_health: HealthStatus | None
    previous_phase: WarmupPhase | None


@dataclass(frozen=True, kw_only=True)
class CooldownStarted(DomainEvent):
    """A cooldown started (or an ongoing one was extended to the provider's later end)."""

    cooldown: CooldownDecision
