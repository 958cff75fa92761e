"""A stand-in for the stored reputation state: NEWBORN while a number is younger than `newborn_days`, STABLE
after. It knows nothing of WARMING or of regressions; the planner reads the evaluated phase once the
reputation state is kept (replace this adapter in bootstrap)."""

from __future__ import annotations

from datetime import datetime, timedelta

from reputation_service.domain.instance import Instance
from reputation_service.domain.warmup import WarmupPhase


class AgePhaseSource:
    def __init__(self, newborn_days: int) -> None:
        self._newborn = timedelta(days=newborn_days)

    async def phase_of(self, instance: Instance, now: datetime) -> WarmupPhase:
        return WarmupPhase.NEWBORN if now - instance.created_at < self._newborn else WarmupPhase.STABLE
