"""ReleaseDueIntents, the scheduler's use case: QUEUED intents whose time has come are decided again
(DROPPED once expired)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gate_service.application.decide import DecisionService
from gate_service.domain.ports import GateUnitOfWork


@dataclass(frozen=True)
class ReleaseDueIntents:
    batch_size: int = 100


class ReleaseDueIntentsHandler:
    def __init__(self, uow: Callable[[], GateUnitOfWork], decider: DecisionService) -> None:
        self._uow = uow
        self._decider = decider

    async def __call__(self, command: ReleaseDueIntents) -> int:
        """Re-decide one batch of due intents in one transaction; returns how many. Replicas never take the
        same intent (rows are claimed with SKIP LOCKED)."""
        async with self._uow() as uow:
            due = await uow.intents.claim_due(self._decider.clock.now(), command.batch_size)
            await self._decider.decide_and_commit(uow, due)
        return len(due)
