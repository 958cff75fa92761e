from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from libs.db.unit_of_work import SqlAlchemyUnitOfWork
from reputation_service.infrastructure.allowances import SqlAlchemyInstanceAllowances
from reputation_service.infrastructure.repositories import SqlAlchemyInstanceRepository
from reputation_service.infrastructure.reputation_store import SqlAlchemyReputationStore
from reputation_service.infrastructure.signal_log import SqlAlchemySignalLog


class SqlAlchemyReputationUnitOfWork(SqlAlchemyUnitOfWork):
    """The reputation context's transaction: the registry, the signal log, the reputations and the
    organizations' instance caps."""

    instances: SqlAlchemyInstanceRepository
    signals: SqlAlchemySignalLog
    reputations: SqlAlchemyReputationStore
    allowances: SqlAlchemyInstanceAllowances

    def _open(self, session: AsyncSession) -> None:
        self.instances = SqlAlchemyInstanceRepository(session)
        self.signals = SqlAlchemySignalLog(session, self._clock)
        self.reputations = SqlAlchemyReputationStore(session)
        self.allowances = SqlAlchemyInstanceAllowances(session, self._clock)

    async def _flush(self) -> None:
        await self.instances.flush()
