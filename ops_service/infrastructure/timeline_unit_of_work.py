from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from libs.db.unit_of_work import SqlAlchemyUnitOfWork
from ops_service.infrastructure.timeline_store import SqlAlchemyTimelineStore


class SqlAlchemyTimelineUnitOfWork(SqlAlchemyUnitOfWork):
    """The timeline consumers' transaction: the facts, their counters and the intent changes they make
    (outbox). The timeline is their inbox: each event
    is stored under its id once (`SqlAlchemyTimelineStore.record`), so no inbox row is written per event."""

    timeline: SqlAlchemyTimelineStore

    def _open(self, session: AsyncSession) -> None:
        self.timeline = SqlAlchemyTimelineStore(session)

    async def first_time(self, consumer: str, event_id: str) -> bool:
        return True

    async def first_times(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        return set(event_ids)
