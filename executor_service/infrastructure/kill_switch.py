"""The kill-switch check right before every provider call, answered from memory.

The projection lives in the database (kept by the ops-event consumer of any replica); each process keeps
the currently paused controls in memory and re-reads them at most `refresh` seconds apart, so the check
costs no query per send. Every process also hears each change on the bus as ops publishes it
(`HeardControls`) and applies it to its view at once: a pause stops the sends of every replica within
milliseconds of its publication, not `refresh` after the replica that consumed it stored it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor_service.domain.controls import Hold, hold_for
from executor_service.infrastructure.tables import controls
from libs.db.controls import SqlAlchemyExecutionControls
from libs.seedwork.controls import ControlKey, ExecutionControl


class ProjectedKillSwitch:
    """Answers "go" from a cache at most `refresh` old; a "hold" is always confirmed by a read that
    started after the question, so a job just woken by a resume is never held again by a stale view.
    Holds are rare (only while paused), so the confirming read costs nothing on the hot path."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, refresh: float = 0.5) -> None:
        self._sessions = sessions
        self._refresh = refresh
        self._stored: dict[ControlKey, ExecutionControl] = {}  # the last read: paused scopes, heard ones
        # Changes heard on the bus that the last read did not have yet (newer than its version of them).
        self._heard: dict[ControlKey, ExecutionControl] = {}
        self._paused: dict[str, list[ExecutionControl]] = {}  # the two together, by organization
        self._loaded_from: float | None = None  # when the read behind `_stored` started
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """The local consumer just changed the projection: read it again before the next check."""
        self._loaded_from = None

    def heard(self, control: ExecutionControl) -> None:
        """Ops changed a scope (heard on the bus): the view has it from now on, until the projection, read
        again, holds this version or a newer one."""
        if control.supersedes(self._heard.get(control.key)) and control.supersedes(
            self._stored.get(control.key)
        ):
            self._heard[control.key] = control
            self._paused = self._merged()

    def _merged(self) -> dict[str, list[ExecutionControl]]:
        current = {**self._stored}
        for key, control in self._heard.items():
            if control.supersedes(current.get(key)):
                current[key] = control
        by_org: dict[str, list[ExecutionControl]] = {}
        for control in current.values():
            if control.paused:
                by_org.setdefault(control.organization_id, []).append(control)
        return by_org

    async def _view(self, not_before: float) -> dict[str, list[ExecutionControl]]:
        """The paused controls from a read started at or after `not_before` (monotonic seconds)."""
        if self._loaded_from is not None and self._loaded_from >= not_before:
            return self._paused
        async with self._lock:  # concurrent callers share one read
            if self._loaded_from is None or self._loaded_from < not_before:
                started = time.monotonic()
                async with self._sessions() as session:
                    store = SqlAlchemyExecutionControls(session, controls)
                    paused = await store.paused()
                    # The heard scopes' stored versions, paused or not: which changes the projection has.
                    heard = await store.of_scopes(list(self._heard))
                stored = {control.key: control for control in [*paused, *heard]}
                for key, control in stored.items():
                    if key in self._heard and not self._heard[key].supersedes(control):
                        del self._heard[key]  # stored: the projection has it from now on
                self._stored = {key: control for key, control in stored.items() if control.paused}
                self._paused, self._loaded_from = self._merged(), started
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
