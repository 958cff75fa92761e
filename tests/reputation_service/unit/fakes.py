from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType

from libs.seedwork.clock import Clock, FakeClock
from libs.seedwork.shared_kernel import ConnectionState, Provider
from libs.testing.fakes import FakeUnitOfWork
from reputation_service.domain.evaluation import HealthStatus, ReputationState
from reputation_service.domain.instance import Instance
from reputation_service.domain.plan_allowance import InstanceAllowance
from reputation_service.domain.ports import InstanceFilter, InstanceReputation, PruneBefore, ReputationFilter
from reputation_service.domain.signals import (
    BucketTotals,
    CounterDeltas,
    Counts,
    Granularity,
    Signal,
    TrackedMessage,
    WindowPlan,
    add_up,
)
from reputation_service.domain.warmup import WarmupPhase


class FakeInstanceRepository:
    def __init__(self) -> None:
        self.rows: dict[str, Instance] = {}
        self.checked_at: dict[str, datetime] = {}  # the status check's bookkeeping
        self.confirmed: list[tuple[str, datetime | None]] = []  # same state heard later: (id, observed at)

    def add(self, instance: Instance) -> None:
        self.rows[instance.id] = instance

    async def get(self, organization_id: str, instance_id: str) -> Instance | None:
        found = self.rows.get(instance_id)
        return found if found is not None and found.organization_id == organization_id else None

    async def find_by_provider_ref(
        self, organization_id: str, provider: Provider, ref: str
    ) -> Instance | None:
        return next(
            (
                i
                for i in self.rows.values()
                if (i.organization_id, i.provider, i.provider_instance_ref)
                == (organization_id, provider, ref)
            ),
            None,
        )

    async def due_for_status_check(
        self,
        states: Collection[ConnectionState],
        providers: Collection[Provider],
        *,
        checked_before: datetime,
        limit: int,
    ) -> list[Instance]:
        never = datetime.min.replace(tzinfo=UTC)
        due = [
            i
            for i in self.rows.values()
            if i.connection_state in states
            and i.provider in providers
            and self.checked_at.get(i.id, never) < checked_before
        ]
        return sorted(due, key=lambda i: (self.checked_at.get(i.id, never), i.id))[:limit]

    async def confirm_connection(self, instance: Instance) -> None:
        self.confirmed.append((instance.id, instance.connection_observed_at))

    async def mark_status_checked(self, instance_ids: Collection[str], *, at: datetime) -> None:
        for instance_id in instance_ids:
            self.checked_at[instance_id] = at

    async def list(
        self, organization_id: str | None, *, after_id: str | None, limit: int, where: InstanceFilter
    ) -> list[Instance]:
        chosen = sorted(
            (
                i
                for i in self.rows.values()
                if (organization_id is None or i.organization_id == organization_id)
                and (after_id is None or i.id > after_id)
                and (where.provider is None or i.provider == where.provider)
                and (where.purpose is None or where.purpose in i.purposes)
                and (where.connection_state is None or i.connection_state == where.connection_state)
            ),
            key=lambda i: i.id,
        )
        return chosen[:limit]

    async def organizations_of(self, instance_ids: Collection[str]) -> dict[str, str]:
        return {i: self.rows[i].organization_id for i in instance_ids if i in self.rows}

    async def count(self, organization_id: str) -> int:
        return sum(i.organization_id == organization_id for i in self.rows.values())


class FakeInstanceAllowances:
    """One transaction at a time in the fakes, so the lock is only the read."""

    def __init__(self) -> None:
        self.rows: dict[str, InstanceAllowance] = {}

    async def lock(self, organization_id: str) -> InstanceAllowance:
        return self.rows.get(organization_id) or InstanceAllowance.unlimited(organization_id)

    async def save_if_newer(self, allowance: InstanceAllowance) -> bool:
        if not allowance.supersedes(self.rows.get(allowance.organization_id)):
            return False
        self.rows[allowance.organization_id] = allowance
        return True


@dataclasses.dataclass
class SignalState:
    signals: dict[str, Signal] = dataclasses.field(default_factory=dict)
    recorded_at: dict[str, datetime] = dataclasses.field(default_factory=dict)
    messages: dict[tuple[str, str], TrackedMessage] = dataclasses.field(default_factory=dict)
    buckets: dict[tuple[str, Granularity, datetime], Counts] = dataclasses.field(default_factory=dict)


class FakeSignalLog:
    """The signal log's semantics in memory: a fact key once, buckets summed as the SQL does."""

    def __init__(self, clock: Clock) -> None:
        self.state = SignalState()
        self._clock = clock

    async def add_new(self, signals: Sequence[Signal]) -> set[str]:
        new = set()
        for signal in signals:
            if signal.fact_key not in self.state.signals:
                self.state.signals[signal.fact_key] = signal
                self.state.recorded_at[signal.fact_key] = self._clock.now()
                new.add(signal.fact_key)
        return new

    async def set_ack_latencies(self, latencies: Mapping[str, int]) -> None:
        for key, latency in latencies.items():
            if key in self.state.signals:
                self.state.signals[key] = dataclasses.replace(self.state.signals[key], ack_latency_ms=latency)

    async def claim_messages(
        self, keys: Collection[tuple[str, str]], *, first_seen_at: datetime
    ) -> dict[tuple[str, str], TrackedMessage]:
        for instance_id, key in keys:
            self.state.messages.setdefault(
                (instance_id, key),
                TrackedMessage(instance_id=instance_id, message_key=key, first_seen_at=first_seen_at),
            )
        return {key: copy.copy(self.state.messages[key]) for key in keys}

    async def messages_of_jobs(
        self, jobs: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], TrackedMessage]:
        found: dict[tuple[str, str], TrackedMessage] = {}
        for message in sorted(self.state.messages.values(), key=lambda m: m.attempts):
            if message.job_id and (message.instance_id, message.job_id) in jobs:
                found[(message.instance_id, message.job_id)] = copy.copy(message)
        return found

    async def save_messages(self, messages: Sequence[TrackedMessage]) -> None:
        for message in messages:
            self.state.messages[(message.instance_id, message.message_key)] = copy.copy(message)

    async def add_counts(self, deltas: CounterDeltas) -> None:
        for key, counts in deltas.items():
            bucket = (key.instance_id, key.granularity, key.start)
            self.state.buckets[bucket] = self.state.buckets.get(bucket, Counts()) + counts

    async def totals(self, instance_id: str, plan: WindowPlan) -> BucketTotals:
        chosen = [
            (granularity, start, counts)
            for (instance, granularity, start), counts in self.state.buckets.items()
            if instance == instance_id
            and any(r.granularity == granularity and r.start <= start < r.end for r in plan.ranges)
        ]
        unanswered = sum(
            counts.sent - counts.answered
            for granularity, start, counts in chosen
            if start + timedelta(seconds=granularity) <= plan.timed_out_before
        )
        return BucketTotals(counts=add_up(c for _, _, c in chosen), unanswered_timed_out=unanswered)

    async def prune(self, retention: PruneBefore, *, limit: int) -> int:
        old_signals = [k for k, at in self.state.recorded_at.items() if at < retention.signals][:limit]
        for key in old_signals:
            del self.state.signals[key], self.state.recorded_at[key]
        old_messages = [k for k, m in self.state.messages.items() if m.first_seen_at < retention.signals][
            :limit
        ]
        for message in old_messages:
            del self.state.messages[message]
        deleted = len(old_signals) + len(old_messages)
        for granularity, before in (
            (Granularity.MINUTE, retention.minute_buckets),
            (Granularity.HOUR, retention.hour_buckets),
        ):
            old = [k for k in self.state.buckets if k[1] == granularity and k[2] < before][:limit]
            for bucket in old:
                del self.state.buckets[bucket]
            deleted += len(old)
        return deleted


@dataclasses.dataclass
class StoredReputation:
    reputation: InstanceReputation
    dirty_since: datetime | None = None


class FakeReputationStore:
    """Reputations in memory, with the same due-for-evaluation rules as the SQL."""

    def __init__(self) -> None:
        self.rows: dict[str, StoredReputation] = {}

    async def add(self, reputation: InstanceReputation) -> None:
        self.rows[reputation.instance_id] = StoredReputation(reputation)

    async def lock(self, instance_ids: Collection[str]) -> dict[str, InstanceReputation]:
        return {i: self.rows[i].reputation for i in sorted(instance_ids) if i in self.rows}

    async def save(
        self, instance_id: str, state: ReputationState, *, explanation: Mapping[str, object] | None
    ) -> None:
        row = self.rows[instance_id]
        kept = explanation if explanation is not None else row.reputation.explanation
        row.reputation = dataclasses.replace(row.reputation, state=state, explanation=kept)
        row.dirty_since = None

    async def mark_dirty(self, instance_ids: Collection[str], *, at: datetime) -> None:
        for instance_id in instance_ids:
            row = self.rows.get(instance_id)
            if row is not None and row.dirty_since is None:
                row.dirty_since = at

    async def due(
        self, now: datetime, *, debounce: timedelta, aging: timedelta, limit: int, dirty_only: bool
    ) -> list[InstanceReputation]:
        def is_due(row: StoredReputation) -> bool:
            state = row.reputation.state
            dirty = row.dirty_since is not None and (
                state.evaluated_at is None or state.evaluated_at <= now - debounce
            )
            if dirty or dirty_only:
                return dirty
            return (
                (state.cooldown_until is not None and state.cooldown_until <= now)
                or state.evaluated_at is None
                or state.evaluated_at <= now - aging
            )

        return [row.reputation for _, row in sorted(self.rows.items()) if is_due(row)][:limit]

    async def get(self, organization_id: str, instance_id: str) -> InstanceReputation | None:
        row = self.rows.get(instance_id)
        return row.reputation if row and row.reputation.organization_id == organization_id else None

    async def list(
        self, organization_id: str, *, after_id: str | None, limit: int, where: ReputationFilter
    ) -> list[InstanceReputation]:
        return [
            row.reputation
            for instance_id, row in sorted(self.rows.items())
            if row.reputation.organization_id == organization_id
            and (after_id is None or instance_id > after_id)
            and (where.health is None or row.reputation.state.health is where.health)
            and (where.phase is None or row.reputation.state.phase is where.phase)
        ][:limit]

    async def of_instances(self, instance_ids: Collection[str]) -> dict[str, InstanceReputation]:
        return {i: self.rows[i].reputation for i in instance_ids if i in self.rows}

    async def census(self) -> dict[tuple[HealthStatus, WarmupPhase], int]:
        counts: dict[tuple[HealthStatus, WarmupPhase], int] = {}
        for row in self.rows.values():
            key = (row.reputation.state.health, row.reputation.state.phase)
            counts[key] = counts.get(key, 0) + 1
        return counts


class FakeReputationUnitOfWork(FakeUnitOfWork):
    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__()
        self.instances = FakeInstanceRepository()
        self.signals = FakeSignalLog(clock or FakeClock())
        self.reputations = FakeReputationStore()
        self.allowances = FakeInstanceAllowances()
        self._committed_allowances: dict[str, InstanceAllowance] = {}
        self._committed_rows: dict[str, Instance] = {}
        self._committed_signals = SignalState()
        self._committed_reputations: dict[str, StoredReputation] = {}
        self._endings: list[Callable[[bool], None]] = []
        self._committed = False

    def seed(self, instance: Instance) -> None:
        """An instance registered before the test, committed."""
        self._committed_rows[instance.id] = instance
        self.instances.rows[instance.id] = instance

    def after_transaction(self, callback: Callable[[bool], None]) -> None:
        self._endings.append(callback)

    async def commit(self) -> None:
        await super().commit()
        self._committed = True

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await super().__aexit__(exc_type, exc, tb)
        endings, self._endings = self._endings, []
        for ending in endings:
            ending(self._committed)
        self._committed = False

    def seed_reputation(self, reputation: InstanceReputation) -> None:
        """A reputation stored before the test, committed."""
        self._committed_reputations[reputation.instance_id] = StoredReputation(reputation)
        self.reputations.rows[reputation.instance_id] = StoredReputation(reputation)

    def _begin(self) -> None:
        self.allowances.rows = dict(self._committed_allowances)
        self.instances.rows = copy.deepcopy(self._committed_rows)
        self.signals.state = copy.deepcopy(self._committed_signals)
        self.reputations.rows = copy.deepcopy(self._committed_reputations)

    def _keep(self) -> None:
        self._committed_allowances = dict(self.allowances.rows)
        self._committed_rows = copy.deepcopy(self.instances.rows)
        self._committed_signals = copy.deepcopy(self.signals.state)
        self._committed_reputations = copy.deepcopy(self.reputations.rows)

    def _discard(self) -> None:
        self.allowances.rows = dict(self._committed_allowances)
        self.instances.rows = copy.deepcopy(self._committed_rows)
        self.signals.state = copy.deepcopy(self._committed_signals)
        self.reputations.rows = copy.deepcopy(self._committed_reputations)
