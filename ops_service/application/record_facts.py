"""Record a batch of facts from any context (each once, by event id), what they add to the counters, and
the intent changes they make (IntentChanged, through the outbox), in the consumer's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ops_service.application.intent_changes import IntentChanges, serialize_batch
from ops_service.application.timeline_ports import TimelineUnitOfWork
from ops_service.domain.execution_counts import CounterDelta, deltas
from ops_service.domain.intent_changes import IntentChanged
from ops_service.domain.timeline import IntentClosed, TimelineRecord


@dataclass(frozen=True)
class FactsRecorded:
    recorded: list[TimelineRecord]  # the new ones; a redelivered fact is not among them
    counted: list[CounterDelta]
    changes: list[IntentChanged]


class RecordFactsHandler:
    async def __call__(self, uow: TimelineUnitOfWork, records: Sequence[TimelineRecord]) -> FactsRecorded:
        await serialize_batch(uow.timeline, records)
        intents = IntentChanges.intents(records)
        approved = await uow.timeline.approved(intents) if intents else set()
        fresh = await uow.timeline.record(records)
        changes = await IntentChanges(uow.timeline, approved).of(fresh)
        for change in changes:
            uow.emit(change)
        closing = [r.fact.intent_id for r in fresh if isinstance(r.fact, IntentClosed) and r.fact.sent]
        # The Gate publishes IntentCreated before IntentSent on one stream: it is recorded by now, in an
        # earlier batch or earlier in this one.
        created = await uow.timeline.submitted_at(closing) if closing else {}
        counted = [
            delta
            for record in fresh
            for delta in deltas(record, created.get(getattr(record.fact, "intent_id", "")))
        ]
        if counted:
            await uow.timeline.add_counters(counted)
        return FactsRecorded(fresh, counted, changes)
