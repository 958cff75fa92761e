"""Record a batch of facts from any context (each once, by event id) and what they add to the counters,
in the consumer's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ops_service.application.audit_ports import AuditUnitOfWork
from ops_service.domain.audit import AuditRecord, IntentClosed
from ops_service.domain.execution_counts import CounterDelta, deltas


@dataclass(frozen=True)
class FactsRecorded:
    recorded: list[AuditRecord]  # the new ones; a redelivered fact is not among them
    counted: list[CounterDelta]


class RecordFactsHandler:
    async def __call__(self, uow: AuditUnitOfWork, records: Sequence[AuditRecord]) -> FactsRecorded:
        fresh = await uow.audit.record(records)
        closing = [r.fact.intent_id for r in fresh if isinstance(r.fact, IntentClosed) and r.fact.sent]
        # The Gate publishes IntentCreated before IntentSent on one stream: it is recorded by now, in an
        # earlier batch or earlier in this one.
        created = await uow.audit.submitted_at(closing) if closing else {}
        counted = [
            delta
            for record in fresh
            for delta in deltas(record, created.get(getattr(record.fact, "intent_id", "")))
        ]
        if counted:
            await uow.audit.add_counters(counted)
        return FactsRecorded(fresh, counted)
