"""The warm-up planner's phase of a number: the evaluated one, as `reputation_states` keeps it. A number
without a stored state (none is expected: registrations and the migration create one) falls back to the
age-based stand-in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reputation_service.application.warmup_ports import PhaseSource
from reputation_service.domain.instance import Instance
from reputation_service.domain.warmup import WarmupPhase
from reputation_service.infrastructure.tables import reputation_states


class StoredPhaseSource:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], fallback: PhaseSource) -> None:
        self._sessions = sessions
        self._fallback = fallback

    async def phase_of(self, instance: Instance, now: datetime) -> WarmupPhase:
        async with self._sessions() as session:
            phase = await session.scalar(
                select(reputation_states.c.phase).where(reputation_states.c.instance_id == instance.id)
            )
        return WarmupPhase(phase) if phase else await self._fallback.phase_of(instance, now)
