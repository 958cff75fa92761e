"""The Gate's own view of the world (instances, reputation, controls, plans), kept from events, and the
candidate index that keeps a decision's cost independent of how many instances an organization has.

Index (ADR 0010): per (organization, purpose) a pool with
- `ready` instances in tiers (health, then phase, best first), each tier in least-recently-chosen order;
- `parked` instances known unavailable until a time (cooldown, timed pause, a full rate window), in a heap;
- `excluded` counts by final reason (disconnected, unhealthy, paused, purpose not allowed by the phase).
A decision takes the first K ready ones (O(K)), un-parks what is due (O(log N) each, once per park) and
reads exclusion counts in O(1).
"""

from __future__ import annotations

import heapq
from collections import Counter, OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime

from gate_service.domain.decision import DecisionReason, Verdict
from gate_service.domain.policies import HEALTH_RANK, PHASE_RANK, GatePolicies, HealthStatus, WarmupPhase
from gate_service.domain.rules import standing_of, standing_refusal
from libs.seedwork.controls import ControlKey, ExecutionControl
from libs.seedwork.shared_kernel import ConnectionState, ControlScope, Provider, Purpose


@dataclass(frozen=True, kw_only=True)
class InstanceState:
    """One instance as the Gate knows it. Reputation fields are None until the reputation context has
    evaluated it; the policies' defaults apply meanwhile."""

    instance_id: str
    organization_id: str
    provider: Provider
    provider_instance_ref: str
    purposes: frozenset[Purpose]
    connection_state: ConnectionState
    instance_version: int
    score: int | None = None
    health: HealthStatus | None = None
    phase: WarmupPhase | None = None
    cooldown_until: datetime | None = None
    reputation_version: int = 0
    phone: str = ""  # E.164 digits; "" until the registry knows it

    def effective_health(self) -> HealthStatus:
        return self.health or HealthStatus.HEALTHY

    def effective_phase(self, policies: GatePolicies) -> WarmupPhase:
        return self.phase or policies.unevaluated_phase

    def effective_score(self, policies: GatePolicies) -> int:
        return self.score if self.score is not None else policies.unevaluated_score

    def cooling_down(self, now: datetime) -> bool:
        return self.cooldown_until is not None and now < self.cooldown_until


@dataclass(frozen=True, kw_only=True)
class Reputation:
    """What the reputation context last said of an instance."""

    score: int
    health: HealthStatus | None
    phase: WarmupPhase | None
    cooldown_until: datetime | None
    version: int


@dataclass(frozen=True, kw_only=True)
class Plan:
    organization_id: str
    daily_cap: int
    monthly_cap: int
    version: int


@dataclass(frozen=True)
class Placement:
    """Where an instance belongs in one pool."""

    where: str  # "ready" | "parked" | "excluded"
    tier: tuple[int, int] = (0, 0)
    until: datetime | None = None
    reason: DecisionReason | None = None


@dataclass(frozen=True)
class Parked:
    state: InstanceState
    reason: DecisionReason
    until: datetime


@dataclass(frozen=True)
class Shortlist:
    ready: list[InstanceState]
    parked: list[Parked]
    excluded: dict[DecisionReason, int]
    pool_size: int  # instances of the organization that allow this purpose


class CandidatePool:
    """The instances of one organization that allow one purpose."""

    def __init__(self) -> None:
        self._tiers: dict[tuple[int, int], OrderedDict[str, None]] = {}
        self._tier_order: list[tuple[int, int]] = []
        self._placement: dict[str, Placement] = {}
        self._heap: list[tuple[datetime, str]] = []
        self._excluded: Counter[DecisionReason] = Counter()
        self._parked_reasons: Counter[DecisionReason] = Counter()

    def __len__(self) -> int:
        return len(self._placement)

    def place(self, instance_id: str, placement: Placement) -> None:
        self.remove(instance_id)
        self._placement[instance_id] = placement
        if placement.where == "ready":
            tier = self._tiers.get(placement.tier)
            if tier is None:
                tier = self._tiers[placement.tier] = OrderedDict()
                self._tier_order = sorted(self._tiers, reverse=True)
            tier[instance_id] = None
        elif placement.where == "parked":
            assert placement.until is not None and placement.reason is not None
            heapq.heappush(self._heap, (placement.until, instance_id))
            self._parked_reasons[placement.reason] += 1
        else:
            assert placement.reason is not None
            self._excluded[placement.reason] += 1

    def remove(self, instance_id: str) -> None:
        old = self._placement.pop(instance_id, None)
        if old is None:
            return
        if old.where == "ready":
            self._tiers[old.tier].pop(instance_id, None)
        elif old.where == "parked":
            assert old.reason is not None
            self._parked_reasons[old.reason] -= 1  # its heap entry is dropped lazily
        else:
            assert old.reason is not None
            self._excluded[old.reason] -= 1

    def placement(self, instance_id: str) -> Placement | None:
        return self._placement.get(instance_id)

    def due(self, now: datetime) -> list[str]:
        """Parked instances whose time has come (to be placed again)."""
        released = []
        while self._heap and self._heap[0][0] <= now:
            until, instance_id = heapq.heappop(self._heap)
            current = self._placement.get(instance_id)
            if current is not None and current.where == "parked" and current.until == until:
                released.append(instance_id)
        return released

    def rotate(self, instance_id: str) -> None:
        """The instance was just chosen: it goes to the back of its tier (round-robin among equals)."""
        current = self._placement.get(instance_id)
        if current is not None and current.where == "ready":
            self._tiers[current.tier].move_to_end(instance_id)

    def take(self, k: int) -> list[str]:
        taken: list[str] = []
        for key in self._tier_order:
            for instance_id in self._tiers[key]:
                taken.append(instance_id)
                if len(taken) == k:
                    return taken
        return taken

    def parked_sample(self, k: int) -> list[str]:
        """Some parked instances, the earliest to return first (the heap's root)."""
        seen: list[str] = []
        for until, instance_id in self._heap[: k * 2]:
            current = self._placement.get(instance_id)
            if current is not None and current.where == "parked" and current.until == until:
                seen.append(instance_id)
            if len(seen) == k:
                break
        return seen

    def excluded_counts(self) -> dict[DecisionReason, int]:
        counts = {reason: n for reason, n in self._excluded.items() if n > 0}
        for reason, n in self._parked_reasons.items():
            if n > 0:
                counts[reason] = counts.get(reason, 0) + n
        return counts


class GateProjection:
    """Instances with reputation, controls and plans, as the Gate last heard of them. Updates carry versions;
    an update older than what is known is dropped (events may arrive late or twice)."""

    def __init__(self, policies: GatePolicies) -> None:
        self.policies = policies
        self.instances: dict[str, InstanceState] = {}
        self.controls: dict[ControlKey, ExecutionControl] = {}
        self.plans: dict[str, Plan] = {}
        self._pools: dict[tuple[str, Purpose], CandidatePool] = {}

    # --- updates ------------------------------------------------------------------------------------

    def upsert_instance(self, state: InstanceState, now: datetime) -> bool:
        """Instance fields from the registry; keeps the known reputation. False when stale."""
        known = self.instances.get(state.instance_id)
        if known is not None:
            if state.instance_version <= known.instance_version:
                return False
            state = replace(
                state,
                score=known.score,
                health=known.health,
                phase=known.phase,
                cooldown_until=known.cooldown_until,
                reputation_version=known.reputation_version,
            )
        self._store(state, known, now)
        return True

    def apply_reputation(
        self,
        instance_id: str,
        *,
        score: int,
        health: HealthStatus | None,
        phase: WarmupPhase | None,
        cooldown_until: datetime | None,
        version: int,
        now: datetime,
    ) -> bool:
        known = self.instances.get(instance_id)
        if known is None or version <= known.reputation_version:
            return False
        state = replace(
            known,
            score=score,
            health=health,
            phase=phase,
            cooldown_until=cooldown_until,
            reputation_version=version,
        )
        self._store(state, known, now)
        return True

    def apply_cooldown(self, instance_id: str, until: datetime, now: datetime) -> bool:
        """A cooldown only ever extends what is known (CooldownStarted carries no version)."""
        known = self.instances.get(instance_id)
        if known is None or (known.cooldown_until is not None and known.cooldown_until >= until):
            return False
        self._store(replace(known, cooldown_until=until), known, now)
        return True

    def upsert_control(self, control: ExecutionControl, now: datetime) -> bool:
        if not control.supersedes(self.controls.get(control.key)):
            return False
        self.controls[control.key] = control
        if control.scope is ControlScope.INSTANCE:
            state = self.instances.get(control.scope_id)
            if state is not None and state.organization_id == control.organization_id:
                self._store(state, state, now)
        return True

    def upsert_plan(self, plan: Plan) -> bool:
        known = self.plans.get(plan.organization_id)
        if known is not None and plan.version <= known.version:
            return False
        self.plans[plan.organization_id] = plan
        return True

    def park(self, instance_id: str, until: datetime, reason: DecisionReason, now: datetime) -> None:
        """A decision learned the instance cannot send before `until` (a full window, a minimum interval):
        skip it in every pool until then. A hint only; the rate store stays the truth."""
        state = self.instances.get(instance_id)
        if state is None or until <= now:
            return
        for purpose in state.purposes:
            pool = self._pools.get((state.organization_id, purpose))
            current = pool.placement(instance_id) if pool is not None else None
            if current is None or pool is None:
                continue
            if current.where == "ready" or (current.where == "parked" and (current.until or now) < until):
                pool.place(instance_id, Placement("parked", until=until, reason=reason))

    def chosen(self, instance_id: str) -> None:
        state = self.instances.get(instance_id)
        if state is None:
            return
        for purpose in state.purposes:
            pool = self._pools.get((state.organization_id, purpose))
            if pool is not None:
                pool.rotate(instance_id)

    # --- reads --------------------------------------------------------------------------------------

    def paused_scope(self, organization_id: str, campaign_id: str, now: datetime) -> ControlScope | None:
        org = self.controls.get((organization_id, ControlScope.ORGANIZATION, organization_id))
        if org is not None and org.holds(now):
            return ControlScope.ORGANIZATION
        if campaign_id:
            campaign = self.controls.get((organization_id, ControlScope.CAMPAIGN, campaign_id))
            if campaign is not None and campaign.holds(now):
                return ControlScope.CAMPAIGN
        return None

    def instance_pause(
        self, instance_id: str, organization_id: str, now: datetime
    ) -> ExecutionControl | None:
        control = self.controls.get((organization_id, ControlScope.INSTANCE, instance_id))
        return control if control is not None and control.holds(now) else None

    def plan(self, organization_id: str) -> Plan | None:
        return self.plans.get(organization_id)

    def shortlist(
        self, organization_id: str, purpose: Purpose, now: datetime, k: int | None = None
    ) -> Shortlist:
        pool = self._pools.get((organization_id, purpose))
        if pool is None:
            return Shortlist([], [], {}, 0)
        for instance_id in pool.due(now):
            self._place(pool, self.instances[instance_id], purpose, now)
        size = k or self.policies.shortlist_size
        ready = [self.instances[i] for i in pool.take(size)]
        parked: list[Parked] = []
        if not ready:
            for instance_id in pool.parked_sample(size):
                placement = pool.placement(instance_id)
                assert placement is not None and placement.until and placement.reason
                parked.append(Parked(self.instances[instance_id], placement.reason, placement.until))
        return Shortlist(ready, parked, pool.excluded_counts(), len(pool))

    def pinned(self, organization_id: str, instance_id: str) -> Shortlist:
        """The one candidate of an intent pinned to `instance_id`: it, whatever its standing (the decision
        applies every rule to it), or nobody when it is unknown or of another organization — the same
        answer either way, so a client learns nothing of other organizations' instances."""
        state = self.instances.get(instance_id)
        if state is None or state.organization_id != organization_id:
            return Shortlist([], [], {}, 0)
        return Shortlist([state], [], {}, 1)

    def pool_size(self, organization_id: str, purpose: Purpose) -> int:
        pool = self._pools.get((organization_id, purpose))
        return len(pool) if pool else 0

    # --- internals ----------------------------------------------------------------------------------

    def _store(self, state: InstanceState, known: InstanceState | None, now: datetime) -> None:
        self.instances[state.instance_id] = state
        old_key = (known.organization_id, known.purposes) if known else None
        if known is not None and old_key != (state.organization_id, state.purposes):
            for purpose in known.purposes:
                pool = self._pools.get((known.organization_id, purpose))
                if pool is not None:
                    pool.remove(state.instance_id)
        for purpose in state.purposes:
            pool = self._pools.setdefault((state.organization_id, purpose), CandidatePool())
            self._place(pool, state, purpose, now)

    def _place(self, pool: CandidatePool, state: InstanceState, purpose: Purpose, now: datetime) -> None:
        pool.place(state.instance_id, self.classify(state, purpose, now))

    def classify(self, state: InstanceState, purpose: Purpose, now: datetime) -> Placement:
        """Where an instance stands for a purpose, by the standing rules (not the rate windows)."""
        pause = self.instance_pause(state.instance_id, state.organization_id, now)
        standing = standing_of(state, purpose=purpose, policies=self.policies, pause=pause, now=now)
        refusal = standing_refusal(standing)
        if refusal is None:
            phase = standing.policy.phase
            return Placement("ready", tier=(HEALTH_RANK[standing.health], PHASE_RANK[phase]))
        if refusal.verdict is Verdict.RECOVERABLE and refusal.retry_at is not None:
            return Placement("parked", until=refusal.retry_at, reason=refusal.reason)
        return Placement("excluded", reason=refusal.reason)
