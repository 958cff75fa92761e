"""Storage ports of the timeline and the execution metrics (ops' read model of every context)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from libs.seedwork.unit_of_work import UnitOfWork
from ops_service.domain.execution_counts import CounterDelta, CounterRow
from ops_service.domain.timeline import TimelineRecord


@dataclass(frozen=True, kw_only=True)
class StoredFact:
    """A recorded fact as the timeline reads it back."""

    event_id: str
    type_name: str
    subject: str
    organization_id: str
    aggregate_id: str
    correlation_id: str
    occurred_at: datetime
    actor: str
    instance_id: str
    campaign_id: str
    scope: str
    remote_phone: str
    provider_message_id: str
    summary: str
    payload: bytes
    sequence: int  # the order it was recorded in: ties of occurred_at keep it


@dataclass(frozen=True, kw_only=True)
class Related:
    """What finds the facts that touched an intent without being correlated to it."""

    organization_id: str
    instance_ids: tuple[str, ...]  # the instances chosen for it
    campaign_id: str
    provider_message_ids: tuple[str, ...]  # what the provider called the message(s) it sent
    target_phone: str  # replies come from it
    since: datetime  # the intent's life: its first and last correlated facts
    until: datetime
    # A contact's messages on the chosen instance from its first send on, until the next intent to the same
    # phone is approved on that instance (after `approved_at`, this intent's last approval), and at most
    # `replies_until`; None: never sent, no reply can be about it.
    replies_since: datetime | None
    replies_until: datetime | None
    approved_at: datetime | None
    max_replies: int


@dataclass(frozen=True)
class HourRow:
    hour: datetime
    metric: str
    count: int


SentMessage = tuple[str, str]
"""(instance id, provider message id): one of our messages as the provider knows it."""


class IntentChangeLookups(Protocol):
    """What emitting an intent's changes in causal order reads (ops_service.domain.intent_changes)."""

    async def serialize(self, keys: Sequence[str]) -> None:
        """Wait until no other transaction holds any of `keys`, then hold them until this one ends: two
        consumers' facts about one intent (or one message) are recorded one after the other."""
        ...

    async def approved(self, intent_ids: Sequence[str]) -> set[str]:
        """Those of these intents whose approval is recorded."""
        ...

    async def campaigns(self, intent_ids: Sequence[str]) -> dict[str, str]:
        """Each intent's campaign ("" for none), for those whose creation is recorded."""
        ...

    async def executor_facts(self, intent_ids: Sequence[str]) -> list[TimelineRecord]:
        """These intents' recorded attempt outcomes and delivery statuses, in the order recorded."""
        ...

    async def sent_by(self, messages: Sequence[SentMessage]) -> dict[SentMessage, str]:
        """The intent each of these messages was sent for, when its send is recorded."""
        ...

    async def replies_to(self, messages: Sequence[SentMessage]) -> list[TimelineRecord]:
        """The recorded replies quoting these messages, in the order recorded."""
        ...


class TimelineStore(IntentChangeLookups, Protocol):
    async def record(self, records: Sequence[TimelineRecord]) -> list[TimelineRecord]:
        """Store the facts not stored yet (by event id); returns those, in order."""
        ...

    async def submitted_at(self, intent_ids: Sequence[str]) -> dict[str, datetime]:
        """When each of these intents was created, for those whose IntentCreated is recorded."""
        ...

    async def add_counters(self, deltas: Sequence[CounterDelta]) -> None: ...

    async def correlated(self, correlation_id: str) -> list[StoredFact]: ...

    async def related(self, related: Related) -> list[StoredFact]: ...

    async def counters(
        self, organization_id: str, since: datetime, resolution: timedelta, instance_id: str | None = None
    ) -> list[CounterRow]:
        """Counters summed over the buckets of `resolution` from `since` on, per instance, metric and
        label; only `instance_id`'s when given."""
        ...

    async def hours(self, organization_id: str, instance_id: str, since: datetime) -> list[HourRow]: ...

    async def prune_events(self, before: datetime, *, limit: int) -> int:
        """Delete up to `limit` facts that occurred before `before`; returns how many went."""
        ...

    async def prune_counters(self, resolution: timedelta, before: datetime, *, limit: int) -> int:
        """Delete up to `limit` buckets of `resolution` that start before `before`; returns how many went."""
        ...


class TimelineUnitOfWork(UnitOfWork, Protocol):
    @property
    def timeline(self) -> TimelineStore: ...
