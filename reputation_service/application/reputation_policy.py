"""Each organization's reputation policy: the evaluation's thresholds and the phase new numbers start in.

Kept in settings, not a table: thresholds change rarely, by an operator, and a deployment's values are
reviewed with its configuration. REPUTATION_THRESHOLDS holds overrides for every organization, and
REPUTATION_ORGANIZATION_THRESHOLDS per organization on top of those. Overrides name the fields of
`Thresholds`:

    {"initial_phase": "NEWBORN", "degraded_below": 50, "timelock_cooldowns": [1800, 7200],
     "delivery_drop": {"review": 0.85, "pause": 0.5, "min_volume": 30}, "escalation_memory": 172800}

Durations (ladders' steps, escalation_memory) are in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from libs.seedwork.errors import InvalidArgument
from reputation_service.domain.evaluation import (
    DEFAULT_THRESHOLDS,
    CooldownLadder,
    Limit,
    Thresholds,
)
from reputation_service.domain.warmup import WarmupPhase

_LADDERS = ("timelock_cooldowns", "temporary_ban_cooldowns", "degradation_cooldowns", "instability_cooldowns")
_LIMITS = (
    "delivery_drop",
    "send_delay_p50",
    "send_delay_p95",
    "frequent_disconnects",
    "high_failure_rate",
    "ack_timeouts",
    "low_engagement",
    "restricted",
)
_LIMIT_KEYS = ("review", "pause", "min_volume")
_INTEGERS = ("pause_on_review_alerts", "degraded_below", "unhealthy_below")


@dataclass(frozen=True, kw_only=True)
class ReputationPolicy:
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    initial_phase: WarmupPhase = WarmupPhase.NEWBORN


@dataclass(frozen=True)
class OrganizationPolicies:
    default: ReputationPolicy = ReputationPolicy()
    organizations: Mapping[str, ReputationPolicy] = field(default_factory=dict)

    def of(self, organization_id: str) -> ReputationPolicy:
        return self.organizations.get(organization_id, self.default)

    @classmethod
    def from_overrides(
        cls, default: Mapping[str, Any], organizations: Mapping[str, Mapping[str, Any]]
    ) -> OrganizationPolicies:
        """The defaults with `default`'s overrides, and each organization's own on top of those."""
        base = policy_with(ReputationPolicy(), default, "thresholds")
        return cls(
            base,
            {
                organization: policy_with(base, overrides, f"organization_thresholds.{organization}")
                for organization, overrides in organizations.items()
            },
        )


def policy_with(base: ReputationPolicy, overrides: Mapping[str, Any], name: str) -> ReputationPolicy:
    """`base` with the overrides applied; InvalidArgument on an unknown key or a value the evaluation
    refuses (a pause level milder than its review level, an empty ladder, ...)."""
    changes: dict[str, Any] = {}
    initial_phase = base.initial_phase
    for key, value in overrides.items():
        where = f"{name}.{key}"
        try:
            if key == "initial_phase":
                initial_phase = WarmupPhase(str(value).upper())
            elif key in _LADDERS:
                steps = tuple(timedelta(seconds=float(step)) for step in value)
                changes[key] = CooldownLadder(steps=steps)
            elif key in _LIMITS:
                unknown = set(value) - set(_LIMIT_KEYS)
                if unknown:
                    raise InvalidArgument.of(
                        where, f"unknown keys {', '.join(sorted(unknown))}; known: {', '.join(_LIMIT_KEYS)}"
                    )
                limit: Limit = getattr(base.thresholds, key)
                changes[key] = replace(limit, **value)
            elif key in _INTEGERS:
                changes[key] = int(value)
            elif key == "escalation_memory":
                changes[key] = timedelta(seconds=float(value))
            else:
                raise InvalidArgument.of(where, "unknown threshold")
        except (TypeError, ValueError) as error:
            raise InvalidArgument.of(where, str(error)) from None
    try:
        thresholds = replace(base.thresholds, **changes)
    except InvalidArgument as error:  # the evaluation's own checks, named under this setting
        raise InvalidArgument([replace(v, field=f"{name}.{v.field}") for v in error.violations]) from None
    return ReputationPolicy(thresholds=thresholds, initial_phase=initial_phase)
