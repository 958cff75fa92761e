"""Record a batch of facts from any context (each once, by event id) and what they add to the counters,
in the consumer's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ops_service.application.timeline_ports import TimelineUnitOfWork
from ops_service.domain.execution_counts import CounterDelta, deltas
from ops_service.domain.timeline import IntentClosed, TimelineRecord


@dataclass(frozen=True)
class FactsRecorded:
    recorded: list[TimelineRecord]  # the new ones; a redelivered fact is not among them
    counted: list[CounterDelta]


class RecordFactsHandler:
    async def __call__(self, uow: TimelineUnitOfWork, records: Sequence[TimelineRecord]) -> FactsRecorded:
        fresh = await uow.timeline.record(records)
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
        return FactsRecorded(fresh, counted)
