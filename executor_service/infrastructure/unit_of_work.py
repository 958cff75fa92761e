from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from executor_service.infrastructure.repositories import SqlAlchemyInstanceRepository, SqlAlchemyJobRepository
from executor_service.infrastructure.tables import controls
from libs.db.controls import SqlAlchemyExecutionControls
from libs.db.unit_of_work import SqlAlchemyUnitOfWork


class SqlAlchemyExecutorUnitOfWork(SqlAlchemyUnitOfWork):
    """The executor's transaction. Besides `on_commit` (after a commit that wrote events, for the relay):
    `on_runnable` after a commit that made a job runnable now (created, retried, released from a pause),
    so a worker of this process takes it at once instead of at its next poll; `after_commit` after every
    commit (a control change writes no event, yet the kill-switch must hear of it)."""

    jobs: SqlAlchemyJobRepository
    controls: SqlAlchemyExecutionControls
    instances: SqlAlchemyInstanceRepository

    def __init__(
        self,
        *args: Any,
        on_runnable: Callable[[], None] | None = None,
        after_commit: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._on_runnable = on_runnable
        self._after_commit = after_commit

    def _open(self, session: AsyncSession) -> None:
        self.jobs = SqlAlchemyJobRepository(session)
        self.controls = SqlAlchemyExecutionControls(session, controls)
        self.instances = SqlAlchemyInstanceRepository(session)

    async def _flush(self) -> None:
        await self.jobs.flush()
        await self.instances.flush()

    async def commit(self) -> None:
        await super().commit()
        if self.jobs.made_runnable and self._on_runnable is not None:
            self._on_runnable()
        if self._after_commit is not None:
            self._after_commit()
