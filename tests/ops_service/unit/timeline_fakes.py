from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

from libs.testing.fakes import FakeUnitOfWork
from ops_service.application.timeline_ports import HourRow, Related, SentMessage, StoredFact
from ops_service.domain.execution_counts import HOUR, MINUTE, CounterDelta, CounterRow, bucket_start
from ops_service.domain.timeline import TimelineRecord
from whatlead.events.v1 import ops_events_pb2
from whatlead.ops.v1 import ops_pb2

PROVIDER_EVENT = "whatlead.events.v1.ProviderEventReceived"
MESSAGE_SENT = "whatlead.events.v1.MessageSent"
EXECUTOR_CHANGES = (
    MESSAGE_SENT,
    "whatlead.events.v1.MessageFailed",
    "whatlead.events.v1.MessageRetryScheduled",
    "whatlead.events.v1.MessageNeedsReview",
    "whatlead.events.v1.MessageDeliveryStatusChanged",
)


def _acks(f: StoredFact, related: Related) -> bool:
    return bool(f.provider_message_id) and f.provider_message_id in related.provider_message_ids


def _replies(f: StoredFact, related: Related, facts: list[StoredFact]) -> bool:
    if not f.remote_phone or f.remote_phone != related.target_phone:
        return False
    if related.replies_since is None or related.replies_until is None:
        return False
    following = [
        other.occurred_at
        for other in facts
        if other.type_name.endswith(".IntentApproved")
        and other.instance_id in related.instance_ids
        and other.remote_phone == related.target_phone
        and related.approved_at is not None
        and other.occurred_at > related.approved_at
    ]
    return related.replies_since <= f.occurred_at <= min([related.replies_until, *following])


class FakeTimelineStore:
    """In memory, with the lookups the SQL store makes (tests/ops_service/integration checks the SQL)."""

    def __init__(self) -> None:
        self.facts: dict[str, StoredFact] = {}
        self.records: dict[str, TimelineRecord] = {}  # the same facts, as recorded (in order)
        self.serialized: list[list[str]] = []  # the keys of each `serialize`, in order
        self.deltas: list[CounterDelta] = []  # every delta added
        # The deltas each resolution's buckets still hold (pruning drops whole buckets of one resolution).
        self.kept: dict[timedelta, list[CounterDelta]] = {MINUTE: [], HOUR: []}

    async def record(self, records: Sequence[TimelineRecord]) -> list[TimelineRecord]:
        fresh = []
        for record in records:
            r = record.recorded
            if r.event_id in self.facts:
                continue
            self.facts[r.event_id] = StoredFact(
                event_id=r.event_id,
                type_name=r.type_name,
                subject=r.subject,
                organization_id=r.organization_id,
                aggregate_id=r.aggregate_id,
                correlation_id=r.correlation_id,
                occurred_at=r.occurred_at,
                actor=r.actor,
                instance_id=record.instance_id,
                campaign_id=record.campaign_id,
                scope=record.scope,
                remote_phone=record.remote_phone,
                provider_message_id=record.provider_message_id,
                summary=record.summary,
                payload=r.payload,
                sequence=len(self.facts) + 1,
            )
            self.records[r.event_id] = record
            fresh.append(record)
        return fresh

    async def submitted_at(self, intent_ids: Sequence[str]) -> dict[str, datetime]:
        return {
            f.correlation_id: f.occurred_at
            for f in self.facts.values()
            if f.correlation_id in intent_ids and f.type_name.endswith(".IntentCreated")
        }

    async def add_counters(self, deltas: Sequence[CounterDelta]) -> None:
        self.deltas.extend(deltas)
        for kept in self.kept.values():
            kept.extend(deltas)

    async def serialize(self, keys: Sequence[str]) -> None:
        self.serialized.append(list(keys))

    async def approved(self, intent_ids: Sequence[str]) -> set[str]:
        return {
            f.correlation_id
            for f in self.facts.values()
            if f.correlation_id in intent_ids and f.type_name.endswith(".IntentApproved")
        }

    async def campaigns(self, intent_ids: Sequence[str]) -> dict[str, str]:
        return {
            f.correlation_id: f.campaign_id
            for f in self.facts.values()
            if f.correlation_id in intent_ids and f.type_name.endswith(".IntentCreated")
        }

    async def executor_facts(self, intent_ids: Sequence[str]) -> list[TimelineRecord]:
        return [
            self.records[f.event_id]
            for f in self.facts.values()
            if f.correlation_id in intent_ids and f.type_name in EXECUTOR_CHANGES
        ]

    async def sent_by(self, messages: Sequence[SentMessage]) -> dict[SentMessage, str]:
        return {
            (f.instance_id, f.provider_message_id): f.correlation_id
            for f in self.facts.values()
            if f.type_name == MESSAGE_SENT and (f.instance_id, f.provider_message_id) in messages
        }

    async def replies_to(self, messages: Sequence[SentMessage]) -> list[TimelineRecord]:
        return [
            self.records[f.event_id]
            for f in self.facts.values()
            if f.type_name == PROVIDER_EVENT and (f.instance_id, f.provider_message_id) in messages
        ]

    async def correlated(self, correlation_id: str) -> list[StoredFact]:
        return [f for f in self.facts.values() if f.correlation_id == correlation_id]

    async def related(self, related: Related) -> list[StoredFact]:
        def during(f: StoredFact) -> bool:
            return related.since <= f.occurred_at <= related.until

        found = []
        for f in self.facts.values():
            mine = f.instance_id in related.instance_ids
            if f.type_name.endswith(".CooldownStarted") and mine and during(f):
                found.append(f)
            elif f.scope and f.organization_id == related.organization_id and during(f):
                if (
                    f.scope == "ORGANIZATION"
                    or (f.scope == "INSTANCE" and mine)
                    or (f.scope == "CAMPAIGN" and f.campaign_id == related.campaign_id != "")
                ):
                    found.append(f)
            elif (
                f.type_name == PROVIDER_EVENT
                and mine
                and (_acks(f, related) or _replies(f, related, list(self.facts.values())))
            ):
                found.append(f)
        return found + self._in_force(related)

    def _in_force(self, related: Related) -> list[StoredFact]:
        """The last change of each of the intent's scopes before its life, when it paused that scope."""
        last: dict[tuple[str, str], StoredFact] = {}
        for f in sorted(self.facts.values(), key=lambda f: f.occurred_at):
            if f.organization_id != related.organization_id or f.occurred_at >= related.since:
                continue
            if f.scope == "ORGANIZATION":
                last[(f.scope, f.organization_id)] = f
            elif f.scope == "INSTANCE" and f.instance_id in related.instance_ids:
                last[(f.scope, f.instance_id)] = f
            elif f.scope == "CAMPAIGN" and f.campaign_id == related.campaign_id != "":
                last[(f.scope, f.campaign_id)] = f
        return [f for f in last.values() if _paused(f)]

    async def counters(
        self, organization_id: str, since: datetime, resolution: timedelta, instance_id: str | None = None
    ) -> list[CounterRow]:
        rows: dict[tuple[str, str, str], CounterRow] = {}
        for d in self.kept[resolution]:
            if d.organization_id != organization_id or bucket_start(d.at, resolution) < since:
                continue
            if instance_id is not None and d.instance_id != instance_id:
                continue
            key = (d.instance_id, d.metric, d.label)
            row = rows.get(key, CounterRow(d.instance_id, d.metric, d.label, 0))
            rows[key] = dataclasses.replace(
                row, count=row.count + d.count, total=row.total + d.total, peak=max(row.peak, d.peak)
            )
        return list(rows.values())

    async def hours(self, organization_id: str, instance_id: str, since: datetime) -> list[HourRow]:
        rows: dict[tuple[datetime, str], int] = {}
        for d in self.kept[HOUR]:
            hour = bucket_start(d.at, HOUR)
            if d.organization_id == organization_id and d.instance_id == instance_id and hour >= since:
                rows[(hour, d.metric)] = rows.get((hour, d.metric), 0) + d.count
        return [HourRow(hour, metric, count) for (hour, metric), count in rows.items()]

    async def prune_events(self, before: datetime, *, limit: int) -> int:
        oldest = [f.event_id for f in self.facts.values() if f.occurred_at < before][:limit]
        for event_id in oldest:
            del self.facts[event_id]
        return len(oldest)

    async def prune_counters(self, resolution: timedelta, before: datetime, *, limit: int) -> int:
        def bucket(d: CounterDelta) -> tuple[str, str, datetime, str, str]:
            return (d.organization_id, d.instance_id, bucket_start(d.at, resolution), d.metric, d.label)

        kept = self.kept[resolution]
        oldest = list(dict.fromkeys(bucket(d) for d in kept if bucket_start(d.at, resolution) < before))
        gone = set(oldest[:limit])
        self.kept[resolution] = [d for d in kept if bucket(d) not in gone]
        return len(gone)


class FakeTimelineUnitOfWork(FakeUnitOfWork):
    def __init__(self, store: FakeTimelineStore | None = None) -> None:
        super().__init__()
        self.timeline = store or FakeTimelineStore()
        self.endings: list[object] = []

    def after_transaction(self, callback: object) -> None:
        self.endings.append(callback)


def _paused(fact: StoredFact) -> bool:
    changed = ops_events_pb2.ExecutionControlChanged.FromString(fact.payload)
    return changed.control.status == ops_pb2.CONTROL_STATUS_PAUSED
