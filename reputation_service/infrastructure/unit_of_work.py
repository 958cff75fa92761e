from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from libs.db.unit_of_work import SqlAlchemyUnitOfWork
from reputation_service.infrastructure.repositories import SqlAlchemyInstanceRepository


class SqlAlchemyReputationUnitOfWork(SqlAlchemyUnitOfWork):
    instances: SqlAlchemyInstanceRepository

    def _open(self, session: AsyncSession) -> None:
        self.instances = SqlAlchemyInstanceRepository(session)

    async def _flush(self) -> None:
        await self.instances.flush()
