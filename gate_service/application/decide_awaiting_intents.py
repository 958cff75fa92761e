"""DecideAwaitingIntents: the Gate just learned of an instance of an organization; its intents QUEUED for
want of any instance (within the projection grace, see rules.ProjectionGrace) are decided again at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gate_service.application.decide import DecisionService
from gate_service.domain.ports import GateUnitOfWork


@dataclass(frozen=True)
class DecideAwaitingIntents:
    organization_id: str
    batch_size: int = 100


class DecideAwaitingIntentsHandler:
    def __init__(self, uow: Callable[[], GateUnitOfWork], decider: DecisionService) -> None:
        self._uow = uow
        self._decider = decider

    async def __call__(self, command: DecideAwaitingIntents) -> int:
        """Re-decide one batch of the organization's intents waiting for an instance; returns how many."""
        async with self._uow() as uow:
            waiting = await uow.intents.claim_awaiting_instance(command.organization_id, command.batch_size)
            await self._decider.decide_and_commit(uow, waiting)
        return len(waiting)
