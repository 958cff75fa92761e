"""DecideIntent: decide a PENDING intent, or a QUEUED one whose time has come."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gate_service.application.decide import DecisionService
from gate_service.application.queries import require_intent_id
from gate_service.domain.intent import IntentStatus, MessageIntent
from gate_service.domain.ports import GateUnitOfWork
from libs.seedwork.errors import FailedPrecondition, NotFound, Reason
from libs.seedwork.organizations import require_organization


@dataclass(frozen=True)
class DecideIntent:
    organization_id: str
    intent_id: str


class DecideIntentHandler:
    """Decides an intent CreateIntent left PENDING, or a QUEUED one whose queued_until has passed (or that
    has expired: it is DROPPED). Anything already decided for good is FailedPrecondition."""

    def __init__(self, uow: Callable[[], GateUnitOfWork], decider: DecisionService) -> None:
        self._uow = uow
        self._decider = decider

    async def __call__(self, command: DecideIntent) -> MessageIntent:
        require_organization(command.organization_id)
        require_intent_id(command.intent_id)
        async with self._uow() as uow:
            intent = await uow.intents.get(command.organization_id, command.intent_id)
            if intent is None:
                raise NotFound(
                    f"intent {command.intent_id} not found",
                    reason=Reason.INTENT_NOT_FOUND,
                    metadata={"intent_id": command.intent_id},
                )
            now = self._decider.clock.now()
            if intent.status is IntentStatus.QUEUED and not intent.is_expired(now):
                assert intent.queued_until is not None
                if intent.queued_until > now:
                    raise FailedPrecondition(
                        f"intent {command.intent_id} is queued until {intent.queued_until.isoformat()}",
                        reason=Reason.INTENT_QUEUED,
                        metadata={
                            "intent_id": command.intent_id,
                            "queued_until": intent.queued_until.isoformat(),
                        },
                    )
            elif intent.status not in (IntentStatus.PENDING, IntentStatus.QUEUED):
                raise FailedPrecondition(
                    f"intent {command.intent_id} is {intent.status}; it was decided already",
                    reason=Reason.INTENT_ALREADY_DECIDED,
                    metadata={"intent_id": command.intent_id, "status": intent.status},
                )
            decision = await self._decider.decide(intent)
            uow.track(intent)
            try:
                await uow.commit()
            except Exception:
                # Not written (a concurrent decision of the same intent committed first, or the store refused
                # or failed it): our slot goes back.
                await self._decider.release_quietly(decision)
                raise
        return intent
