"""DecideIntent: decide a PENDING intent, or a QUEUED one whose time has come."""

from __future__ import annotations

from collections.abc import Callable

from gate_service.application.decide import DecisionService
from gate_service.application.queries import require_intent_id, require_organization
from gate_service.domain.intent import IntentStatus, MessageIntent
from gate_service.domain.ports import GateUnitOfWork
from libs.seedwork.errors import FailedPrecondition, NotFound


class DecideIntentHandler:
    def __init__(self, uow: Callable[[], GateUnitOfWork], decider: DecisionService) -> None:
        self._uow = uow
        self._decider = decider

    async def __call__(self, organization_id: str, intent_id: str) -> MessageIntent:
        require_organization(organization_id)
        require_intent_id(intent_id)
        async with self._uow() as uow:
            intent = await uow.intents.get(organization_id, intent_id)
            if intent is None:
                raise NotFound(f"intent {intent_id} not found")
            if intent.status is IntentStatus.QUEUED and not intent.is_expired(self._decider.clock.now()):
                assert intent.queued_until is not None
                if intent.queued_until > self._decider.clock.now():
                    raise FailedPrecondition(
                        f"intent {intent_id} is queued until {intent.queued_until.isoformat()}"
                    )
            elif intent.status not in (IntentStatus.PENDING, IntentStatus.QUEUED):
                raise FailedPrecondition(f"intent {intent_id} is {intent.status}; it was decided already")
            await self._decider.decide(intent)
            uow.track(intent)
            await uow.commit()
        return intent
