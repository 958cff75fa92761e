"""Storage ports of the reputation context: what its use cases need to keep and find instances."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from libs.seedwork.shared_kernel import ConnectionState, Provider, Purpose
from libs.seedwork.unit_of_work import UnitOfWork
from reputation_service.domain.evaluation import HealthStatus, ReputationState
from reputation_service.domain.instance import Instance
from reputation_service.domain.plan_allowance import InstanceAllowance
from reputation_service.domain.signals import BucketTotals, CounterDeltas, Signal, TrackedMessage, WindowPlan
from reputation_service.domain.warmup import WarmupPhase


@dataclass(frozen=True, kw_only=True)
class InstanceFilter:
    provider: Provider | None = None
    purpose: Purpose | None = None
    connection_state: ConnectionState | None = None


class InstanceRepository(Protocol):
    def add(self, instance: Instance) -> None:
        """Insert at commit (the unit of work flushes it)."""
        ...

    async def get(self, organization_id: str, instance_id: str) -> Instance | None:
        """The instance, only if it belongs to this organization."""
        ...

    async def find_by_provider_ref(
        self, organization_id: str, provider: Provider, provider_instance_ref: str
    ) -> Instance | None:
        """The organization's instance behind this provider reference, if any (references are unique)."""
        ...

    async def due_for_status_check(
        self,
        states: Collection[ConnectionState],
        providers: Collection[Provider],
        *,
        checked_before: datetime,
        limit: int,
    ) -> list[Instance]:
        """Every organization's instances in `states` at `providers` that the status check last asked
        about before `checked_before` (or never), the longest unasked first."""
        ...

    async def confirm_connection(self, instance: Instance) -> None:
        """Store the instance's connection reason and observed time, without a new version, unless its
        stored state changed meanwhile or already has a later observation."""
        ...

    async def mark_status_checked(self, instance_ids: Collection[str], *, at: datetime) -> None:
        """Note that the status check asked about them now (its own bookkeeping: no version, no event)."""
        ...

    async def list(
        self, organization_id: str | None, *, after_id: str | None, limit: int, where: InstanceFilter
    ) -> list[Instance]:
        """Instances in id (creation) order, strictly after `after_id`; None: of every organization
        (only for internal projection rebuilds, never for a client's call)."""
        ...

    async def organizations_of(self, instance_ids: Collection[str]) -> dict[str, str]:
        """instance id -> its organization, for those of the ids the registry knows (every organization:
        for the signal consumers, whose events carry an instance id)."""
        ...

    async def count(self, organization_id: str) -> int:
        """How many instances the organization has registered."""
        ...


class InstanceAllowances(Protocol):
    """Each organization's instance cap, projected from ops' plans."""

    async def lock(self, organization_id: str) -> InstanceAllowance:
        """The organization's allowance (unlimited when no plan arrived), its row locked until the
        transaction ends: registrations of one organization counting against a cap take turns, so two
        cannot both take the last slot."""
        ...

    async def save_if_newer(self, allowance: InstanceAllowance) -> bool:
        """Keep it unless a newer (or the same) version is kept already; True when kept."""
        ...


class SignalLog(Protocol):
    """The raw log of signals, the messages it correlates and the per-instance bucket counters. Every write
    happens in the caller's transaction."""

    async def add_new(self, signals: Sequence[Signal]) -> set[str]:
        """Record the facts (one per fact key); returns the keys of those that were not there yet. A fact
        key another transaction is recording waits for it, so a fact is new to one transaction only."""
        ...

    async def set_ack_latencies(self, latencies: Mapping[str, int]) -> None:
        """DELIVERED facts' latencies (by fact key), known once their sends are known too."""
        ...

    async def claim_messages(
        self, keys: Collection[tuple[str, str]], *, first_seen_at: datetime
    ) -> dict[tuple[str, str], TrackedMessage]:
        """The messages (instance id, message key), created when new, each locked until the transaction
        ends: two consumers correlating facts of the same message take turns, neither overwrites the
        other. Locked in one order, so two batches never wait on each other in a circle."""
        ...

    async def messages_of_jobs(
        self, jobs: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], TrackedMessage]:
        """(instance id, job id) -> the message the Executor last sent for that job, for the jobs whose
        MessageSent was recorded (not locked)."""
        ...

    async def save_messages(self, messages: Sequence[TrackedMessage]) -> None:
        """Store the claimed messages' new state."""
        ...

    async def add_counts(self, deltas: CounterDeltas) -> None:
        """Add to each bucket's counters (creating the bucket)."""
        ...

    async def totals(self, instance_id: str, plan: WindowPlan) -> BucketTotals:
        """The window's buckets added up."""
        ...

    async def prune(self, retention: PruneBefore, *, limit: int) -> int:
        """Delete up to `limit` rows of each kind older than its horizon; returns how many went in all."""
        ...


@dataclass(frozen=True, kw_only=True)
class PruneBefore:
    """Horizons of the periodic pruning: raw signals and tracked messages by when they were recorded,
    buckets by their start."""

    signals: datetime
    minute_buckets: datetime
    hour_buckets: datetime


@dataclass(frozen=True, kw_only=True)
class InstanceReputation:
    """One instance's stored reputation: the state evaluations carry forward, and the explanation of the
    last evaluation that changed something (None until one did)."""

    instance_id: str
    organization_id: str
    registered_at: datetime  # the instance's, for its age
    state: ReputationState
    explanation: Mapping[str, object] | None = None


@dataclass(frozen=True, kw_only=True)
class ReputationFilter:
    health: HealthStatus | None = None
    phase: WarmupPhase | None = None


class ReputationStore(Protocol):
    """Reputation per instance. Writes happen in the caller's transaction."""

    async def add(self, reputation: InstanceReputation) -> None:
        """The first state of a newly registered instance."""
        ...

    async def lock(self, instance_ids: Collection[str]) -> dict[str, InstanceReputation]:
        """The reputations of these instances (those that have one), locked until the transaction ends,
        in one order: a restriction and the evaluator never overwrite each other's state."""
        ...

    async def save(
        self, instance_id: str, state: ReputationState, *, explanation: Mapping[str, object] | None
    ) -> None:
        """Store the state after an evaluation and clear the instance's pending re-evaluation;
        `explanation` None keeps the one stored (nothing changed, nothing new to explain)."""
        ...

    async def mark_dirty(self, instance_ids: Collection[str], *, at: datetime) -> None:
        """New signals arrived: evaluate these instances again (debounced). The first mark is kept."""
        ...

    async def due(
        self, now: datetime, *, debounce: timedelta, aging: timedelta, limit: int, dirty_only: bool
    ) -> list[InstanceReputation]:
        """Up to `limit` reputations to evaluate now, locked (others' locked rows skipped): marked dirty
        and not evaluated within `debounce`; unless `dirty_only`, also those whose cooldown has ended and
        those not evaluated within `aging` (silent numbers age)."""
        ...

    async def get(self, organization_id: str, instance_id: str) -> InstanceReputation | None:
        """Only if the instance belongs to this organization."""
        ...

    async def list(
        self, organization_id: str, *, after_id: str | None, limit: int, where: ReputationFilter
    ) -> list[InstanceReputation]:
        """In instance id order, strictly after `after_id`."""
        ...

    async def of_instances(self, instance_ids: Collection[str]) -> dict[str, InstanceReputation]:
        """Not locked: for reads that join instances with their reputation."""
        ...

    async def census(self) -> dict[tuple[HealthStatus, WarmupPhase], int]:
        """How many instances there are per (health, phase), for the gauges."""
        ...


class ReputationUnitOfWork(UnitOfWork, Protocol):
    """One transaction over the registry; its events reach the outbox on commit."""

    @property
    def instances(self) -> InstanceRepository: ...

    @property
    def signals(self) -> SignalLog: ...

    @property
    def reputations(self) -> ReputationStore: ...

    @property
    def allowances(self) -> InstanceAllowances: ...

    def after_transaction(self, callback: Callable[[bool], None]) -> None:
        """Run `callback(committed)` once this transaction has ended (metrics count what committed)."""
        ...
