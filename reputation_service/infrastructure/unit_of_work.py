from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncSession

from libs.db.unit_of_work import SqlAlchemyUnitOfWork
from reputation_service.infrastructure.repositories import SqlAlchemyInstanceRepository
from reputation_service.infrastructure.reputation_store import SqlAlchemyReputationStore
from reputation_service.infrastructure.signal_log import SqlAlchemySignalLog


class SqlAlchemyReputationUnitOfWork(SqlAlchemyUnitOfWork):
    """The reputation context's transaction: the registry, the signal log and the reputations."""

    instances: SqlAlchemyInstanceRepository
    signals: SqlAlchemySignalLog
    reputations: SqlAlchemyReputationStore

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._endings: list[Callable[[bool], None]] = []
        self._committed = False

    async def __aenter__(self) -> Self:
        self._endings = []
        self._committed = False
        return await super().__aenter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            endings, self._endings = self._endings, []
            for ending in endings:
                ending(self._committed)

    def after_transaction(self, callback: Callable[[bool], None]) -> None:
        """Run `callback(committed)` once this transaction has ended, committed or not."""
        self._endings.append(callback)

    def _open(self, session: AsyncSession) -> None:
        self.instances = SqlAlchemyInstanceRepository(session)
        self.signals = SqlAlchemySignalLog(session, self._clock)
        self.reputations = SqlAlchemyReputationStore(session)

    async def _flush(self) -> None:
        await self.instances.flush()

    async def commit(self) -> None:
        await super().commit()
        self._committed = True
