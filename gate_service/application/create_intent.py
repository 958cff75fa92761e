"""CreateIntent: create a PENDING intent, idempotently; DecideIntent decides it later."""

from __future__ import annotations

from dataclasses import dataclass

from gate_service.application.intent_creation import CreationResult, IdempotentIntentStore, IntentRequest


@dataclass(frozen=True, kw_only=True)
class CreateIntent(IntentRequest):
    """Create an intent without deciding it."""


class CreateIntentHandler:
    """The intent is stored PENDING; a replay of the same idempotency key returns the stored intent."""

    def __init__(self, intents: IdempotentIntentStore) -> None:
        self._intents = intents

    async def __call__(self, command: CreateIntent) -> CreationResult:
        return await self._intents.store(self._intents.new_intent(command))
