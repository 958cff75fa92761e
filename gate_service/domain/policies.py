"""Policies as data: what each warm-up phase may send, per-contact protection, plan limits.

The defaults below are the documented starting point (see gate_service/README.md); deployments override
them through settings (`GATE_PHASE_POLICIES`, `GATE_CONTACT_*`) without touching code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any

from libs.seedwork.errors import InvalidArgument
from libs.seedwork.shared_kernel import MessageType, Purpose


class WarmupPhase(StrEnum):
    NEWBORN = "NEWBORN"
    WARMING = "WARMING"
    INTERACTING = "INTERACTING"
    STABLE = "STABLE"


class HealthStatus(StrEnum):
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    UNHEALTHY = "UNHEALTHY"


PHASE_RANK = {
    WarmupPhase.NEWBORN: 0,
    WarmupPhase.WARMING: 1,
    WarmupPhase.INTERACTING: 2,
    WarmupPhase.STABLE: 3,
}
HEALTH_RANK = {HealthStatus.HEALTHY: 2, HealthStatus.DEGRADED: 1, HealthStatus.UNHEALTHY: 0}


@dataclass(frozen=True, kw_only=True)
class RateCaps:
    """Sends allowed per fixed UTC window, and the minimum gap between two sends. A cap of 0 = none."""

    per_minute: int
    per_hour: int
    per_day: int
    min_interval: timedelta

    def scaled(self, factor: float, interval_factor: float) -> RateCaps:
        return RateCaps(
            per_minute=max(1, int(self.per_minute * factor)) if self.per_minute else 0,
            per_hour=max(1, int(self.per_hour * factor)) if self.per_hour else 0,
            per_day=max(1, int(self.per_day * factor)) if self.per_day else 0,
            min_interval=self.min_interval * interval_factor,
        )


@dataclass(frozen=True, kw_only=True)
class PhasePolicy:
    """What an instance in one warm-up phase may send."""

    phase: WarmupPhase
    caps: RateCaps
    purposes: frozenset[Purpose]
    types: frozenset[MessageType]


ALL_TYPES = frozenset(MessageType)
ALL_PURPOSES = frozenset(Purpose)

# Growth of roughly x3 per phase on every cap, in the spirit of SendGrid's warm-up and WAHA's anti-block
# guide; later phases allow a superset of what earlier ones do (the candidate index relies on that).
DEFAULT_PHASE_POLICIES: dict[WarmupPhase, PhasePolicy] = {
    WarmupPhase.NEWBORN: PhasePolicy(
        phase=WarmupPhase.NEWBORN,
        caps=RateCaps(per_minute=2, per_hour=10, per_day=30, min_interval=timedelta(seconds=60)),
        purposes=frozenset({Purpose.WARMUP}),
        types=frozenset({MessageType.TEXT, MessageType.REACTION}),
    ),
    WarmupPhase.WARMING: PhasePolicy(
        phase=WarmupPhase.WARMING,
        caps=RateCaps(per_minute=4, per_hour=40, per_day=150, min_interval=timedelta(seconds=20)),
        purposes=frozenset({Purpose.WARMUP, Purpose.SCHEDULE}),
        types=frozenset({MessageType.TEXT, MessageType.REACTION, MessageType.AUDIO}),
    ),
    WarmupPhase.INTERACTING: PhasePolicy(
        phase=WarmupPhase.INTERACTING,
        caps=RateCaps(per_minute=8, per_hour=120, per_day=600, min_interval=timedelta(seconds=8)),
        purposes=ALL_PURPOSES,
        types=ALL_TYPES,
    ),
    WarmupPhase.STABLE: PhasePolicy(
        phase=WarmupPhase.STABLE,
        caps=RateCaps(per_minute=20, per_hour=400, per_day=3000, min_interval=timedelta(seconds=3)),
        purposes=ALL_PURPOSES,
        types=ALL_TYPES,
    ),
}


@dataclass(frozen=True, kw_only=True)
class ContactPolicy:
    """Per-target protection, whatever instance sends: WhatsApp's pair rate (~1 message / 6 s) and the
    providers' anti-ban advice (a few messages per contact per hour)."""

    min_gap: timedelta = timedelta(seconds=6)
    per_hour: int = 4  # 0 = no hourly cap


@dataclass(frozen=True, kw_only=True)
class PlanLimits:
    """An organization's plan; UTC calendar day and month; 0 = unlimited. No plan known = unlimited."""

    daily_cap: int = 0
    monthly_cap: int = 0


@dataclass(frozen=True, kw_only=True)
class GatePolicies:
    """Everything the decision reads that is configuration rather than state."""

    phases: dict[WarmupPhase, PhasePolicy] = field(default_factory=lambda: dict(DEFAULT_PHASE_POLICIES))
    contact: ContactPolicy = ContactPolicy()
    # An instance the reputation context has not evaluated yet is HEALTHY in this phase.
    unevaluated_phase: WarmupPhase = WarmupPhase.INTERACTING
    unevaluated_score: int = 70
    # A DEGRADED instance stays usable at reduced pressure.
    degraded_cap_factor: float = 0.5
    degraded_interval_factor: float = 2.0
    # How many best-ranked ready candidates one decision evaluates (bounded cost, see ADR 0010).
    shortlist_size: int = 8
    # How long an intent that finds no instance at all waits for the projection to catch up with the
    # registry before it is BLOCKED (read your own writes, see rules.ProjectionGrace); zero = no wait.
    projection_grace: timedelta = timedelta(seconds=2)

    def policy(self, phase: WarmupPhase) -> PhasePolicy:
        return self.phases[phase]

    def caps_for(self, phase: WarmupPhase, health: HealthStatus) -> RateCaps:
        caps = self.phases[phase].caps
        if health is HealthStatus.DEGRADED:
            return caps.scaled(self.degraded_cap_factor, self.degraded_interval_factor)
        return caps


def _with_cap(caps: RateCaps, key: str, value: int) -> RateCaps:
    if key == "per_minute":
        return replace(caps, per_minute=value)
    if key == "per_hour":
        return replace(caps, per_hour=value)
    return replace(caps, per_day=value)


def phase_policies_with(overrides: dict[str, dict[str, Any]]) -> dict[WarmupPhase, PhasePolicy]:
    """The defaults with per-phase overrides, e.g. {"STABLE": {"per_minute": 60, "min_interval_seconds": 1,
    "purposes": ["DISPATCH"], "types": ["TEXT"]}}; unknown phases or keys are rejected."""
    policies = dict(DEFAULT_PHASE_POLICIES)
    for phase_name, values in overrides.items():
        try:
            phase = WarmupPhase(phase_name.upper())
        except ValueError:
            raise InvalidArgument.of("phase_policies", f"unknown phase {phase_name!r}") from None
        policy = policies[phase]
        caps = policy.caps
        for key, value in values.items():
            if key in ("per_minute", "per_hour", "per_day"):
                if int(value) < 0:
                    raise InvalidArgument.of("phase_policies", f"{phase_name}.{key} must be >= 0")
                caps = _with_cap(caps, key, int(value))
            elif key == "min_interval_seconds":
                caps = replace(caps, min_interval=timedelta(seconds=float(value)))
            elif key == "purposes":
                policy = replace(policy, purposes=frozenset(Purpose(p.upper()) for p in value))
            elif key == "types":
                policy = replace(policy, types=frozenset(MessageType(t.upper()) for t in value))
            else:
                raise InvalidArgument.of("phase_policies", f"unknown key {phase_name}.{key}")
        policies[phase] = replace(policy, caps=caps)
    return policies
