"""The writes every versioned repository holds until commit: inserts, updates that expect the version read,
and a retryable error when another transaction changed the row first."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select

from libs.db.engine import create_engine, session_factory
from libs.db.optimistic import OptimisticWrites
from libs.seedwork.errors import FailedPrecondition

notes = Table(
    "notes",
    MetaData(),
    Column("id", String(36), primary_key=True),
    Column("text", String(100), nullable=False),
    Column("version", Integer, nullable=False),
)


@dataclass
class Note:
    id: str
    text: str
    version: int


def to_row(note: Note) -> dict[str, object]:
    return {"id": note.id, "text": note.text, "version": note.version}


@pytest.fixture
async def sessions(postgres_databases):
    engine = create_engine(postgres_databases("optimistic"))
    async with engine.begin() as connection:
        await connection.run_sync(notes.metadata.create_all)
    yield session_factory(engine)
    await engine.dispose()


async def read(session, note_id: str) -> Note:
    row = (await session.execute(select(notes).where(notes.c.id == note_id))).one()
    return Note(row.id, row.text, row.version)


async def test_new_notes_are_inserted_and_changed_ones_updated(sessions):
    async with sessions() as session:
        writes: OptimisticWrites[Note] = OptimisticWrites(notes, "note")
        writes.add(Note("n1", "draft", 1))
        await writes.flush(session, to_row)
        await session.commit()

    async with sessions() as session:
        writes = OptimisticWrites(notes, "note")
        note = writes.loaded(await read(session, "n1"))
        note.text, note.version = "final", 2
        await writes.flush(session, to_row)
        await writes.flush(session, to_row)  # nothing changed since: no second update to fail
        await session.commit()

    async with sessions() as session:
        assert await read(session, "n1") == Note("n1", "final", 2)


async def test_a_row_changed_since_it_was_read_is_a_retryable_conflict(sessions):
    async with sessions() as session:
        await session.execute(notes.insert().values(id="n1", text="draft", version=1))
        await session.commit()

    async with sessions() as first, sessions() as second:
        first_writes: OptimisticWrites[Note] = OptimisticWrites(notes, "note")
        second_writes: OptimisticWrites[Note] = OptimisticWrites(notes, "note")
        mine = first_writes.loaded(await read(first, "n1"))
        theirs = second_writes.loaded(await read(second, "n1"))
        await first.commit()  # end the read, so the other session may write
        theirs.text, theirs.version = "theirs", 2
        await second_writes.flush(second, to_row)
        await second.commit()

        mine.text, mine.version = "mine", 2
        with pytest.raises(FailedPrecondition, match="note n1 was changed concurrently; retry"):
            await first_writes.flush(first, to_row)
        await first.rollback()

    async with sessions() as session:
        assert await read(session, "n1") == Note("n1", "theirs", 2)
