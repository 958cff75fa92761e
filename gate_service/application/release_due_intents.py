"""The scheduler's use case: QUEUED intents whose time has come are decided again (DROPPED once expired)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from gate_service.application.decide import DecisionService
from gate_service.domain.ports import GateUnitOfWork

log = logging.getLogger(__name__)


class ReleaseDueIntentsHandler:
    def __init__(
        self, uow: Callable[[], GateUnitOfWork], decider: DecisionService, *, batch_size: int = 100
    ) -> None:
        self._uow = uow
        self._decider = decider
        self._batch_size = batch_size

    async def __call__(self) -> int:
        """Re-decide one batch of due intents in one transaction; returns how many. Replicas never take the
        same intent (rows are claimed with SKIP LOCKED)."""
        async with self._uow() as uow:
            due = await uow.intents.claim_due(self._decider.clock.now(), self._batch_size)
            for intent in due:
                await self._decider.decide(intent)
                uow.track(intent)
            if due:
                await uow.commit()
        return len(due)
