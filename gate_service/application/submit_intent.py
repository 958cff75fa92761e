"""SubmitIntent and CreateIntent: create an intent (and decide it at once), idempotently."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gate_service.application.decide import DecisionService
from gate_service.domain.intent import DEFAULT_VALIDITY, MAX_VALIDITY, IntentOrigin, MessageIntent, Payload
from gate_service.domain.ports import GateUnitOfWork
from libs.seedwork.clock import Clock
from libs.seedwork.errors import AlreadyExists
from libs.seedwork.shared_kernel import MessageType, Purpose, TargetKind

RECENT_KEYS = 20_000  # idempotency keys this process created lately: a retry is answered without deciding


@dataclass(frozen=True, kw_only=True)
class SubmitIntent:
    organization_id: str
    idempotency_key: str
    target_kind: TargetKind | None
    target_value: str
    type: MessageType | None
    purpose: Purpose | None
    origin: IntentOrigin | None
    campaign_id: str
    payload: Payload | None
    not_before: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class SubmitResult:
    intent: MessageIntent
    replayed: bool


class SubmitIntentHandler:
    """Creates the intent and, with `decide=True` (SubmitIntent), decides it in the same transaction.

    The same idempotency key returns the intent it first created (replayed); the same key with a different
    request is AlreadyExists. Concurrent identical submits in this process wait for the first one; across
    replicas (or after a restart) the database's unique (organization, key) settles it.
    """

    def __init__(
        self,
        uow: Callable[[], GateUnitOfWork],
        decider: DecisionService,
        clock: Clock,
        *,
        decide: bool,
        default_validity: timedelta = DEFAULT_VALIDITY,
        max_validity: timedelta = MAX_VALIDITY,
    ) -> None:
        self._uow = uow
        self._decider = decider
        self._clock = clock
        self._decide = decide
        self._default_validity = default_validity
        self._max_validity = max_validity
        self._inflight: dict[tuple[str, str], asyncio.Future[SubmitResult]] = {}
        self._recent: OrderedDict[tuple[str, str], str] = OrderedDict()  # key -> intent id, this process

    async def __call__(self, command: SubmitIntent) -> SubmitResult:
        intent = MessageIntent.create(
            organization_id=command.organization_id,
            target_kind=command.target_kind,
            target_value=command.target_value,
            type=command.type,
            purpose=command.purpose,
            origin=command.origin,
            campaign_id=command.campaign_id,
            payload=command.payload,
            idempotency_key=command.idempotency_key,
            not_before=command.not_before,
            expires_at=command.expires_at,
            now=self._clock.now(),
            default_validity=self._default_validity,
            max_validity=self._max_validity,
        )
        if not intent.idempotency_key:
            return await self._submit(intent)
        key = (intent.organization_id, intent.idempotency_key)
        inflight = self._inflight.get(key)
        if inflight is not None:
            first = await asyncio.shield(inflight)
            return _replay(first.intent, intent)
        future: asyncio.Future[SubmitResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._submit(intent)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # waiters re-raise it; nobody else has to retrieve it
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]

    async def _submit(self, intent: MessageIntent) -> SubmitResult:
        key = (intent.organization_id, intent.idempotency_key)
        if intent.idempotency_key and (known := self._recent.get(key)) is not None:
            async with self._uow() as uow:
                existing = await uow.intents.get(intent.organization_id, known)
            if existing is not None:
                return _replay(existing, intent)
        # Optimistic: a key is almost always new, so no read before deciding. The unique (organization,
        # key) constraint catches the rest (a retry after a restart, another replica); that rare loser
        # gives its rate slot back and answers with the winner.
        async with self._uow() as uow:
            if self._decide:
                await self._decider.decide(intent)
            uow.intents.add(intent)
            uow.track(intent)
            try:
                await uow.commit()
                lost = False
            except AlreadyExists:
                if not intent.idempotency_key:
                    raise
                lost = True
        if lost:
            await self._decider.release(intent)
            async with self._uow() as uow:
                existing = await uow.intents.find_by_key(intent.organization_id, intent.idempotency_key)
            if existing is None:
                raise AlreadyExists("a concurrent submit with this idempotency key failed; retry")
            self._remember(key, existing.id)
            return _replay(existing, intent)
        if intent.idempotency_key:
            self._remember(key, intent.id)
        return SubmitResult(intent, replayed=False)

    def _remember(self, key: tuple[str, str], intent_id: str) -> None:
        self._recent[key] = intent_id
        if len(self._recent) > RECENT_KEYS:
            self._recent.popitem(last=False)


def _replay(existing: MessageIntent, attempt: MessageIntent) -> SubmitResult:
    if existing.request_hash != attempt.request_hash:
        raise AlreadyExists(
            f"idempotency key {attempt.idempotency_key!r} was already used for a different request "
            f"(intent {existing.id})"
        )
    return SubmitResult(existing, replayed=True)
