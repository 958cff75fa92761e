from __future__ import annotations

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
