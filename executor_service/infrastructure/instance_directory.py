"""The instance projection as workers read it: the restriction check right before every provider call,
answered from memory like the kill-switch, and the provider profile of a job whose outcome is unknown."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor_service.application.ports import profile_of
from executor_service.domain.instance import InstanceHold, InstanceProfile
from executor_service.domain.job import MessageExecutionJob
from executor_service.infrastructure.repositories import SqlAlchemyInstanceRepository
from libs.providers.capabilities import ProviderProfile


class ProjectedInstances:
    """Keeps the restricted instances (a handful of rows) in memory, re-read at most `refresh` seconds
    apart; a hold is confirmed by a read started after the question, so a job just woken by a lifted
    restriction is not held again by a stale view (as ProjectedKillSwitch does for pauses)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        assumed_timelock: timedelta,
        refresh: float = 0.5,
    ) -> None:
        self._sessions = sessions
        self._assumed_timelock = assumed_timelock
        self._refresh = refresh
        self._restricted: dict[str, InstanceProfile] = {}
        self._loaded_from: float | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._loaded_from = None

    async def _view(self, not_before: float) -> dict[str, InstanceProfile]:
        if self._loaded_from is not None and self._loaded_from >= not_before:
            return self._restricted
        async with self._lock:
            if self._loaded_from is None or self._loaded_from < not_before:
                started = time.monotonic()
                async with self._sessions() as session:
                    rows = await SqlAlchemyInstanceRepository(session).restricted()
                self._restricted = {row.instance_id: row for row in rows}
                self._loaded_from = started
        return self._restricted

    async def hold_for(self, instance_id: str, now: datetime) -> InstanceHold | None:
        asked = time.monotonic()
        hold = self._hold(await self._view(asked - self._refresh), instance_id, now)
        if hold is None:
            return None
        return self._hold(await self._view(asked), instance_id, now)

    def _hold(self, view: dict[str, InstanceProfile], instance_id: str, now: datetime) -> InstanceHold | None:
        instance = view.get(instance_id)
        if instance is None:
            return None
        return instance.hold(now, assumed_timelock=self._assumed_timelock)

    async def profile_of(self, job: MessageExecutionJob) -> ProviderProfile:
        async with self._sessions() as session:
            found = await SqlAlchemyInstanceRepository(session).get_many([job.instance_id])
        return profile_of(found.get(job.instance_id), job.provider)
