"""The kill-switch check right before every provider call, answered from memory.

The projection lives in the database (kept by the ops-event consumer of any replica); each process keeps
the currently paused controls in memory and re-reads them at most `refresh` seconds apart, so the check
costs no query per send. A pause therefore reaches every worker within `refresh` of its projection.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor_service.domain.controls import Hold, hold_for
from executor_service.infrastructure.tables import controls
from libs.db.controls import SqlAlchemyExecutionControls
from libs.seedwork.controls import ExecutionControl


class ProjectedKillSwitch:
    """Answers "go" from a cache at most `refresh` old; a "hold" is always confirmed by a read that
    started after the question, so a job just woken by a resume is never held again by a stale view.
    Holds are rare (only while paused), so the confirming read costs nothing on the hot path."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, refresh: float = 0.5) -> None:
        self._sessions = sessions
        self._refresh = refresh
        self._paused: dict[str, list[ExecutionControl]] = {}
        self._loaded_from: float | None = None  # when the read behind `_paused` started
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """The local consumer just changed the projection: read it again before the next check."""
        self._loaded_from = None

    async def _view(self, not_before: float) -> dict[str, list[ExecutionControl]]:
        """The paused controls from a read started at or after `not_before` (monotonic seconds)."""
        if self._loaded_from is not None and self._loaded_from >= not_before:
            return self._paused
        async with self._lock:  # concurrent callers share one read
            if self._loaded_from is None or self._loaded_from < not_before:
                started = time.monotonic()
                async with self._sessions() as session:
                    paused = await SqlAlchemyExecutionControls(session, controls).paused()
                by_org: dict[str, list[ExecutionControl]] = {}
                for control in paused:
                    by_org.setdefault(control.organization_id, []).append(control)
                self._paused, self._loaded_from = by_org, started
        return self._paused

    async def hold_for(
        self, *, organization_id: str, instance_id: str, campaign_id: str, now: datetime
    ) -> Hold | None:
        asked = time.monotonic()
        hold = self._hold(
            await self._view(asked - self._refresh), organization_id, instance_id, campaign_id, now
        )
        if hold is None:
            return None
        return self._hold(await self._view(asked), organization_id, instance_id, campaign_id, now)

    @staticmethod
    def _hold(
        view: dict[str, list[ExecutionControl]],
        organization_id: str,
        instance_id: str,
        campaign_id: str,
        now: datetime,
    ) -> Hold | None:
        controls = view.get(organization_id)
        if not controls:
            return None
        return hold_for(
            controls,
            organization_id=organization_id,
            instance_id=instance_id,
            campaign_id=campaign_id,
            now=now,
        )
