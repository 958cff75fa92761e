"""The group-commit writer on PostgreSQL: units that clash or lose a race fail alone, and only the others'
intents and events are written."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gate_service.infrastructure.batching import WriteRequest
from gate_service.infrastructure.tables import intents, messaging
from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import AlreadyExists, FailedPrecondition
from tests.gate_service.unit.support import new_intent


def unit(*, key: str = "", clock: FakeClock) -> WriteRequest:
    intent = new_intent(clock, idempotency_key=key)
    return WriteRequest(inserts=[intent], events=intent.pull_events())


async def outbox_event_ids(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        outbox = messaging.outbox
        rows = await connection.execute(select(outbox.c.event_id).order_by(outbox.c.position))
        return [row.event_id for row in rows]


async def test_a_unit_clashing_on_the_idempotency_key_fails_alone_and_writes_no_event(writer, engine):
    clock = FakeClock()
    first, clashing, other = unit(key="k-1", clock=clock), unit(key="k-1", clock=clock), unit(clock=clock)
    # Submitted together, so they share one batch (one transaction).
    results = await asyncio.gather(
        *(writer.write(request) for request in (first, clashing, other)), return_exceptions=True
    )

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], AlreadyExists)
    async with engine.connect() as connection:
        stored = set((await connection.execute(select(intents.c.id))).scalars())
    assert stored == {first.inserts[0].id, other.inserts[0].id}
    assert await outbox_event_ids(engine) == [e.event_id for e in first.events + other.events]


async def test_an_update_that_lost_the_race_fails_alone_and_the_winner_is_kept(writer, engine):
    clock = FakeClock()
    created = unit(clock=clock)
    await writer.write(created)
    intent = created.inserts[0]
    stale = intent.version - 1  # as if read before someone else changed it
    intent.version += 1

    with pytest.raises(FailedPrecondition):
        await writer.write(WriteRequest(updates=[(intent, stale)], events=[]))
    await writer.write(WriteRequest(updates=[(intent, intent.version - 1)], events=[]))

    async with engine.connect() as connection:
        version = (await connection.execute(select(intents.c.version))).scalar_one()
    assert version == intent.version
    assert await outbox_event_ids(engine) == [e.event_id for e in created.events]


async def test_a_unit_that_updates_and_then_clashes_leaves_nothing_behind_and_the_batch_commits(
    writer, engine
):
    clock = FakeClock()
    created = unit(clock=clock)
    await writer.write(created)
    decided = created.inserts[0]
    decided.version += 1  # as a decision would
    taken = unit(key="k-2", clock=clock)
    await writer.write(taken)
    mixed = unit(key="k-2", clock=clock)  # changes one intent and adds one whose key is taken
    mixed.updates.append((decided, decided.version - 1))
    others = [unit(clock=clock) for _ in range(3)]

    results = await asyncio.gather(*(writer.write(r) for r in (mixed, *others)), return_exceptions=True)

    assert isinstance(results[0], AlreadyExists) and results[1:] == [None, None, None]
    async with engine.connect() as connection:
        versions = dict((await connection.execute(select(intents.c.id, intents.c.version))).all())
    assert versions[decided.id] == 1  # the update of the failed unit was rolled back with it
    assert mixed.inserts[0].id not in versions and all(o.inserts[0].id in versions for o in others)
    expected = [e.event_id for r in (created, taken, *others) for e in r.events]
    assert sorted(await outbox_event_ids(engine)) == sorted(expected)


async def test_connections_go_back_to_the_pool_with_transactions_on(writer, engine):
    """The writer runs its one-statement batches in autocommit; the pool's other users must not inherit it
    (their multi-statement units of work would stop being atomic)."""
    clock = FakeClock()
    await writer.write(unit(clock=clock))
    await writer.close()
    async with engine.connect() as connection:
        await connection.execute(select(intents.c.id).limit(1))
        assert connection.in_transaction()
        driver = (await connection.get_raw_connection()).driver_connection
        assert not getattr(driver, "autocommit", False)


async def test_concurrent_units_commit_as_one_batch_and_the_batch_size_metric_shows_it(writer, engine):
    def observed() -> tuple[float, float]:
        labels = {"stage": "commit"}
        return (
            REGISTRY.get_sample_value("whatlead_gate_batch_size_count", labels) or 0.0,
            REGISTRY.get_sample_value("whatlead_gate_batch_size_sum", labels) or 0.0,
        )

    clock = FakeClock()
    batches, items = observed()
    units = [unit(clock=clock) for _ in range(5)]

    await asyncio.gather(*(writer.write(request) for request in units))

    assert observed() == (batches + 1, items + 5)  # one batch of five, not five of one
    assert len(await outbox_event_ids(engine)) == 5
