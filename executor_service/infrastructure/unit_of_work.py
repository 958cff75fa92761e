from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from executor_service.infrastructure.repositories import SqlAlchemyControlRepository, SqlAlchemyJobRepository
from libs.db.unit_of_work import SqlAlchemyUnitOfWork


class SqlAlchemyExecutorUnitOfWork(SqlAlchemyUnitOfWork):
    jobs: SqlAlchemyJobRepository
    controls: SqlAlchemyControlRepository

    def _open(self, session: AsyncSession) -> None:
        self.jobs = SqlAlchemyJobRepository(session)
        self.controls = SqlAlchemyControlRepository(session)

    async def _flush(self) -> None:
        await self.jobs.flush()

    async def first_times(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        """The inbox rows of a whole consumer batch in one statement (see libs.messaging.BatchInbox)."""
        if not event_ids:
            return set()
        inbox = self._tables.inbox
        now = self._clock.now()
        statement = insert(inbox).on_conflict_do_nothing().returning(inbox.c.event_id)
        rows = [{"consumer": consumer, "event_id": event_id, "processed_at": now} for event_id in event_ids]
        return set((await self.session.scalars(statement, rows)).all())
