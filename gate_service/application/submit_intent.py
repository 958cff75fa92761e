"""SubmitIntent: create an intent and decide it at once, in one transaction, idempotently."""

from __future__ import annotations

from dataclasses import dataclass

from gate_service.application.decide import DecisionService
from gate_service.application.intent_creation import CreationResult, IdempotentIntentStore, IntentRequest


@dataclass(frozen=True, kw_only=True)
class SubmitIntent(IntentRequest):
    """Create an intent and decide it now."""


class SubmitIntentHandler:
    """The intent is stored with its first decision (APPROVED, QUEUED, BLOCKED or DROPPED). A replay of the
    same idempotency key returns the stored intent without deciding again; should the store lose to a
    concurrent request with the same key, the slot its decision took is given back."""

    def __init__(self, intents: IdempotentIntentStore, decider: DecisionService) -> None:
        self._intents = intents
        self._decider = decider

    async def __call__(self, command: SubmitIntent) -> CreationResult:
        intent = self._intents.new_intent(command)
        return await self._intents.store(intent, self._decider.decide, self._decider.release_quietly)
