"""Business rules of a decision: each small class answers one question.

Per-candidate rules return None (no objection) or a Refusal: FINAL (waiting would not help) or RECOVERABLE
with the time it stops applying. The candidate's verdict combines them (see `evaluate_candidate`).

Standing rules look only at what changes rarely (connection, pause, health, phase, cooldown): the
projection's candidate index files every instance by them (ready, parked or excluded) when the instance
changes, and every decision checks them again, with the rules that depend on the intent and the windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Protocol

from gate_service.domain.decision import DecisionReason, Verdict
from gate_service.domain.policies import GatePolicies, HealthStatus, PhasePolicy, RateCaps
from gate_service.domain.rates import InstanceUsage, next_day, next_hour, next_minute
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.shared_kernel import ConnectionState, MessageType, Purpose

if TYPE_CHECKING:  # the projection's index runs the standing rules: a runtime import would be circular
    from gate_service.domain.projection import InstanceState


@dataclass(slots=True)
class Refusal:
    verdict: Verdict
    reason: DecisionReason
    retry_at: datetime | None = None


@dataclass(slots=True, kw_only=True)
class InstanceStanding:
    """What the standing rules look at: one instance, for one purpose, at one moment."""

    instance: InstanceState
    purpose: Purpose
    health: HealthStatus
    policy: PhasePolicy
    pause: ExecutionControl | None
    now: datetime


@dataclass(slots=True, kw_only=True)
class CandidateContext(InstanceStanding):
    """One instance as a candidate for one intent: its standing, the message type, the target phone ("" for
    a group) and its rate windows."""

    type: MessageType
    usage: InstanceUsage
    caps: RateCaps
    target_phone: str = ""


class CandidateRule(Protocol):
    def check(self, ctx: CandidateContext) -> Refusal | None: ...


class StandingRule(Protocol):
    def check(self, ctx: InstanceStanding) -> Refusal | None: ...


class InstanceConnected:
    def check(self, ctx: InstanceStanding) -> Refusal | None:
        if ctx.instance.connection_state is not ConnectionState.CONNECTED:
            return Refusal(Verdict.FINAL, DecisionReason.INSTANCE_DISCONNECTED)
        return None


class InstanceNotPaused:
    def check(self, ctx: InstanceStanding) -> Refusal | None:
        if ctx.pause is None:
            return None
        if ctx.pause.paused_until is not None:
            return Refusal(Verdict.RECOVERABLE, DecisionReason.OPS_PAUSED, ctx.pause.paused_until)
        return Refusal(Verdict.FINAL, DecisionReason.OPS_PAUSED)


class InstanceHealthy:
    def check(self, ctx: InstanceStanding) -> Refusal | None:
        if ctx.health is HealthStatus.UNHEALTHY:
            return Refusal(Verdict.FINAL, DecisionReason.INSTANCE_UNHEALTHY)
        return None


class PhaseAllowsPurpose:
    def check(self, ctx: InstanceStanding) -> Refusal | None:
        if ctx.purpose not in ctx.policy.purposes or ctx.purpose not in ctx.instance.purposes:
            return Refusal(Verdict.FINAL, DecisionReason.PURPOSE_NOT_ALLOWED)
        return None


class NoActiveCooldown:
    def check(self, ctx: InstanceStanding) -> Refusal | None:
        if ctx.instance.cooling_down(ctx.now):
            return Refusal(Verdict.RECOVERABLE, DecisionReason.COOLDOWN_ACTIVE, ctx.instance.cooldown_until)
        return None


class PhaseAllowsType:
    def check(self, ctx: CandidateContext) -> Refusal | None:
        if ctx.type not in ctx.policy.types:
            return Refusal(Verdict.FINAL, DecisionReason.TYPE_NOT_ALLOWED_IN_PHASE)
        return None


class NotSelfTarget:
    """A number never sends to its own phone (a warm-up pairing or a typo would otherwise do it)."""

    def check(self, ctx: CandidateContext) -> Refusal | None:
        if ctx.target_phone and ctx.target_phone == ctx.instance.phone:
            return Refusal(Verdict.FINAL, DecisionReason.SELF_TARGET)
        return None


class MinimumInterval:
    """The phase's minimum gap between two sends of one instance."""

    def check(self, ctx: CandidateContext) -> Refusal | None:
        last = ctx.usage.last_sent_at
        if last is not None and ctx.caps.min_interval and ctx.now < last + ctx.caps.min_interval:
            return Refusal(Verdict.RECOVERABLE, DecisionReason.MIN_INTERVAL, last + ctx.caps.min_interval)
        return None


_WINDOW_END = {"minute": next_minute, "hour": next_hour, "day": next_day}


class RateWindow:
    """One fixed UTC window (minute, hour or day) of the phase's caps."""

    def __init__(self, window: str) -> None:
        self.window = window
        self._cap = attrgetter(f"per_{window}")
        self._used = attrgetter(window)
        self._end = _WINDOW_END[window]

    def check(self, ctx: CandidateContext) -> Refusal | None:
        cap = self._cap(ctx.caps)
        if cap and self._used(ctx.usage) >= cap:
            return Refusal(Verdict.RECOVERABLE, DecisionReason.RATE_LIMIT, self._end(ctx.now))
        return None


# Final refusals first: the first one found is the candidate's reason.
STANDING_RULES: tuple[StandingRule, ...] = (
    InstanceConnected(),
    InstanceNotPaused(),
    InstanceHealthy(),
    PhaseAllowsPurpose(),
    NoActiveCooldown(),
)
DEFAULT_RULES: tuple[CandidateRule, ...] = (
    *STANDING_RULES,
    PhaseAllowsType(),
    NotSelfTarget(),
    MinimumInterval(),
    RateWindow("day"),
    RateWindow("hour"),
    RateWindow("minute"),
)


@dataclass(slots=True)
class CandidateOutcome:
    verdict: Verdict
    reason: DecisionReason | None
    retry_at: datetime | None
    rate_pressure: float


def rate_pressure(usage: InstanceUsage, caps: RateCaps) -> float:
    """How full the tightest window is, 0..1."""
    pressure = 0.0
    for used, cap in (
        (usage.minute, caps.per_minute),
        (usage.hour, caps.per_hour),
        (usage.day, caps.per_day),
    ):
        if cap:
            pressure = max(pressure, min(1.0, used / cap))
    return pressure


def standing_refusal(
    ctx: InstanceStanding, rules: tuple[StandingRule, ...] = STANDING_RULES
) -> Refusal | None:
    """What keeps the instance from sending whatever the intent and the windows: the first FINAL refusal,
    else the RECOVERABLE one that lasts longest, else None."""
    latest: Refusal | None = None
    for rule in rules:
        refusal = rule.check(ctx)
        if refusal is None:
            continue
        if refusal.verdict is Verdict.FINAL:
            return refusal
        if latest is None or (refusal.retry_at or ctx.now) > (latest.retry_at or ctx.now):
            latest = refusal
    return latest


def evaluate_candidate(
    ctx: CandidateContext, rules: tuple[CandidateRule, ...] = DEFAULT_RULES
) -> CandidateOutcome:
    """FINAL if any rule refuses for good; else RECOVERABLE at the latest time every refusal has passed
    (all must pass at once); else ALLOW."""
    recoverable: list[Refusal] = []
    for rule in rules:
        refusal = rule.check(ctx)
        if refusal is None:
            continue
        if refusal.verdict is Verdict.FINAL:
            return CandidateOutcome(Verdict.FINAL, refusal.reason, None, 0.0)
        recoverable.append(refusal)
    pressure = rate_pressure(ctx.usage, ctx.caps)
    if recoverable:
        latest = max(recoverable, key=lambda r: r.retry_at or ctx.now)
        return CandidateOutcome(Verdict.RECOVERABLE, latest.reason, latest.retry_at, pressure)
    return CandidateOutcome(Verdict.ALLOW, None, None, pressure)


def standing_of(
    instance: InstanceState,
    *,
    purpose: Purpose,
    policies: GatePolicies,
    pause: ExecutionControl | None,
    now: datetime,
) -> InstanceStanding:
    phase = instance.effective_phase(policies)
    return InstanceStanding(
        instance=instance,
        purpose=purpose,
        health=instance.effective_health(),
        policy=policies.policy(phase),
        pause=pause,
        now=now,
    )


def context_for(
    instance: InstanceState,
    *,
    purpose: Purpose,
    type: MessageType,
    usage: InstanceUsage,
    policies: GatePolicies,
    pause: ExecutionControl | None,
    now: datetime,
    target_phone: str = "",
) -> CandidateContext:
    phase = instance.effective_phase(policies)
    health = instance.effective_health()
    return CandidateContext(
        instance=instance,
        purpose=purpose,
        type=type,
        usage=usage,
        health=health,
        policy=policies.policy(phase),
        caps=policies.caps_for(phase, health),
        pause=pause,
        now=now,
        target_phone=target_phone,
    )


class ProjectionGrace:
    """Read your own writes: an instance registered a moment ago reaches the Gate's projection 100-200 ms
    later. While an intent is younger than the grace, finding no instance at all for it may only mean the
    projection is behind the registry, so the intent waits (QUEUED) instead of being BLOCKED for good; an
    instance event of its organization decides it again at once, and past the grace BLOCKED stands."""

    def __init__(self, grace: timedelta) -> None:
        self.grace = grace

    def wait_until(
        self, *, created_at: datetime, now: datetime, candidates: int, excluded: int
    ) -> datetime | None:
        """Until when the intent may wait for its organization's instances; None when it may not."""
        if candidates or excluded or not self.grace:
            return None  # the Gate knows instances of the organization: its refusal is its own
        deadline = created_at + self.grace
        return deadline if now < deadline else None
