from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from libs.db.unit_of_work import SqlAlchemyUnitOfWork


class SqlAlchemyOpsUnitOfWork(SqlAlchemyUnitOfWork):
    """The ops context's transaction."""

    def _open(self, session: AsyncSession) -> None:
        pass
