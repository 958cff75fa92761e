from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from gate_service.infrastructure.metrics import count_decisions
from gate_service.infrastructure.repositories import SqlAlchemyIntentRepository, SqlAlchemyProjectionStore
from libs.db.unit_of_work import SqlAlchemyUnitOfWork
from libs.seedwork.aggregate import DomainEvent


class SqlAlchemyGateUnitOfWork(SqlAlchemyUnitOfWork):
    """One transaction on the gate database (consumers, scheduler, DecideIntent, queries)."""

    intents: SqlAlchemyIntentRepository
    projections: SqlAlchemyProjectionStore

    def _open(self, session: AsyncSession) -> None:
        self.intents = SqlAlchemyIntentRepository(session, self._clock)
        self.projections = SqlAlchemyProjectionStore(session)

    async def _flush(self) -> None:
        await self.intents.flush()

    async def _write_outbox(self) -> list[DomainEvent]:
        self._written = await super()._write_outbox()
        return self._written

    async def commit(self) -> None:
        self._written = []
        await super().commit()
        count_decisions(self._written)  # committed: commit raises otherwise
