"""The Gate's own Prometheus metrics (the shared ones live in libs)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gate_service.domain.events import IntentApproved, IntentBlocked, IntentDropped, IntentQueued
from gate_service.domain.intent import IntentStatus
from gate_service.infrastructure.tables import intents
from libs.seedwork.aggregate import DomainEvent

BATCH_SIZE = Histogram(
    "whatlead_gate_batch_size",
    "Items per coalesced batch (group commit, grouped reads, Redis script calls): 1 means nothing batched",
    ["stage"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
REFUSED_WRITES = Counter(
    "whatlead_gate_refused_writes_total",
    "Units of work the database refused for their data (answered INVALID_ARGUMENT); their batch was split so "
    "the others were written",
)
DECISIONS = Counter(
    "whatlead_gate_decisions_total",
    "Decisions committed, by outcome (approved, queued, blocked, dropped) and the verdict's reason code "
    '("none" when approved); a decision whose commit failed is not counted, its retry is',
    ["outcome", "reason"],
)
QUEUED_INTENTS = Gauge(
    "whatlead_gate_queued_intents",
    "Intents waiting QUEUED, as of the last count",
    multiprocess_mode="mostrecent",  # every process counts the same table
)


def count_decisions(events: Iterable[DomainEvent]) -> None:
    """Once the events of a transaction are committed: the decisions among them."""
    for event in events:
        match event:
            case IntentApproved():
                DECISIONS.labels("approved", "none").inc()
            case IntentQueued() | IntentBlocked() | IntentDropped():
                outcome = type(event).__name__.removeprefix("Intent").lower()
                DECISIONS.labels(outcome, event.reason.value).inc()


async def count_queued_intents(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        queued = (
            select(func.count()).select_from(intents).where(intents.c.status == IntentStatus.QUEUED.value)
        )
        return int(await session.scalar(queued) or 0)
