"""The notes context's repository and unit of work, built on libs/db like every service's."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from libs.db.optimistic import OptimisticWrites
from libs.db.unit_of_work import SqlAlchemyUnitOfWork
from tests.libs.notes.domain import Note
from tests.libs.notes.tables import notes


class NoteRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._writes: OptimisticWrites[Note] = OptimisticWrites(notes, "note")

    def add(self, note: Note) -> None:
        self._writes.add(note)

    async def get(self, organization_id: str, note_id: str) -> Note | None:
        row = (
            await self._session.execute(
                select(notes).where(notes.c.id == note_id, notes.c.organization_id == organization_id)
            )
        ).one_or_none()
        if row is None:
            return None
        return self._writes.loaded(
            Note(id=row.id, organization_id=row.organization_id, text=row.text, version=row.version)
        )

    async def flush(self) -> None:
        await self._writes.flush(self._session, _to_row)


def _to_row(note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "organization_id": note.organization_id,
        "text": note.text,
        "version": note.version,
    }


class NotesUnitOfWork(SqlAlchemyUnitOfWork):
    notes: NoteRepository

    def _open(self, session: AsyncSession) -> None:
        self.notes = NoteRepository(session)

    async def _flush(self) -> None:
        await self.notes.flush()
