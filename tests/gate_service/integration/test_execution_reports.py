"""The Executor's reports applied in bulk on PostgreSQL: one read of the batch's intents, one versioned
update of those that changed, their events in the outbox; a lost race saves nothing of the batch."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gate_service.application.record_execution import MessageFailedReport
from gate_service.domain.intent import IntentStatus, MessageIntent
from gate_service.domain.policies import WarmupPhase
from gate_service.infrastructure.batching import GroupCommitWriter, WriteRequest
from gate_service.infrastructure.proto_mapping import event_to_proto
from gate_service.infrastructure.tables import intents, messaging
from gate_service.infrastructure.unit_of_work import SqlAlchemyGateUnitOfWork
from libs.db.engine import create_engine, session_factory
from libs.seedwork.errors import FailedPrecondition
from tests.gate_service.unit.support import World, failed, record, sent
from whatlead.events.v1 import gate_events_pb2

SENT = gate_events_pb2.IntentSent.DESCRIPTOR.full_name
FAILED = gate_events_pb2.IntentFailed.DESCRIPTOR.full_name


@pytest.fixture
async def engine(migrated_database: Callable[[str], str]) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database("gate_service"))
    yield engine
    await engine.dispose()


@pytest.fixture
def world() -> World:
    world = World()
    world.add(phase=WarmupPhase.STABLE)
    return world


@pytest.fixture
def uow(engine: AsyncEngine, world: World) -> Callable[[], SqlAlchemyGateUnitOfWork]:
    sessions = session_factory(engine)
    return lambda: SqlAlchemyGateUnitOfWork(
        sessions, tables=messaging, to_message=event_to_proto, clock=world.clock
    )


async def approved(engine: AsyncEngine, world: World, n: int) -> list[MessageIntent]:
    """`n` intents approved and stored, their own events left out of the outbox."""
    stored = []
    for i in range(n):
        intent = world.intent(target_value=f"+55119000000{i:02d}")
        await world.decide(intent)
        assert intent.status is IntentStatus.APPROVED
        intent.pull_events()
        stored.append(intent)
        world.clock.advance(seconds=10)  # past the instance's minimum interval
    writer = GroupCommitWriter(engine, tables=messaging, to_message=event_to_proto, clock=world.clock)
    try:
        await writer.write(WriteRequest(inserts=stored))
    finally:
        await writer.close()
    return stored


async def stored(engine: AsyncEngine) -> dict[str, tuple[str, int]]:
    """Each intent's status and version."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(intents.c.id, intents.c.status, intents.c.version))
        return {row.id: (row.status, row.version) for row in rows}


async def outbox_types(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        outbox = messaging.outbox
        return list(
            (await connection.execute(select(outbox.c.type_name).order_by(outbox.c.position))).scalars()
        )


async def test_a_mixed_batch_saves_each_changed_intent_once_with_its_event(engine, world, uow):
    a, b = await approved(engine, world, 2)

    async with uow() as batch:
        changed = await record(
            batch, sent(world, a.id), failed(world, b.id), sent(world, a.id), sent(world, "unknown-intent")
        )
        await batch.commit()

    assert changed == [True, True, False, False]
    assert await stored(engine) == {
        a.id: (IntentStatus.SENT.value, a.version + 1),
        b.id: (IntentStatus.FAILED.value, b.version + 1),
    }
    assert await outbox_types(engine) == [SENT, FAILED]


async def test_a_redelivered_batch_changes_nothing_more(engine, world, uow):
    a, b = await approved(engine, world, 2)
    for _ in range(2):
        async with uow() as batch:
            changed = await record(batch, sent(world, a.id), failed(world, b.id))
            await batch.commit()

    assert changed == [False, False]
    assert await stored(engine) == {
        a.id: (IntentStatus.SENT.value, a.version + 1),
        b.id: (IntentStatus.FAILED.value, b.version + 1),
    }
    assert await outbox_types(engine) == [SENT, FAILED]


async def test_a_sent_intent_whose_message_fails_afterwards_is_saved_failed_in_either_order(
    engine, world, uow
):
    """The async 463: the job reported sent, then failed (or the reports arrive the other way round)."""
    a, b = await approved(engine, world, 2)

    def late_failure(intent: MessageIntent) -> MessageFailedReport:
        assert intent.decided_by_instance_id is not None
        return dataclasses.replace(
            failed(world, intent.id), instance_id=intent.decided_by_instance_id, error_code="463"
        )

    async with uow() as batch:
        changed = await record(batch, sent(world, a.id), late_failure(b), sent(world, b.id))
        assert changed == [True, True, False]
        await batch.commit()
    async with uow() as later:
        assert await record(later, late_failure(a), sent(world, a.id)) == [True, False]
        await later.commit()

    assert await stored(engine) == {
        a.id: (IntentStatus.FAILED.value, a.version + 2),
        b.id: (IntentStatus.FAILED.value, b.version + 1),
    }
    assert await outbox_types(engine) == [SENT, FAILED, FAILED]


async def test_a_batch_with_an_intent_changed_concurrently_saves_nothing(engine, world, uow):
    a, b = await approved(engine, world, 2)

    async with uow() as batch:
        assert await record(batch, sent(world, a.id), sent(world, b.id)) == [True, True]
        async with uow() as concurrent:  # another replica's report on b commits first
            assert await record(concurrent, failed(world, b.id)) == [True]
            await concurrent.commit()
        with pytest.raises(FailedPrecondition):
            await batch.commit()

    assert await stored(engine) == {
        a.id: (IntentStatus.APPROVED.value, a.version),
        b.id: (IntentStatus.FAILED.value, b.version + 1),
    }
    assert await outbox_types(engine) == [FAILED]

    # The consumer then applies the batch's reports one by one: a is sent, b's late report is dropped.
    async with uow() as retry:
        assert await record(retry, sent(world, a.id)) == [True]
        assert await record(retry, sent(world, b.id)) == [False]
        await retry.commit()
    assert (await stored(engine))[a.id] == (IntentStatus.SENT.value, a.version + 1)
    assert await outbox_types(engine) == [FAILED, SENT]
