"""What SubmitIntent and CreateIntent share: the request, the new intent, and storing it idempotently."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gate_service.application.decide import Decision
from gate_service.application.ports import RecentIntentKeys
from gate_service.domain.intent import DEFAULT_VALIDITY, MAX_VALIDITY, IntentOrigin, MessageIntent, Payload
from gate_service.domain.ports import GateUnitOfWork
from libs.seedwork.clock import Clock
from libs.seedwork.errors import AlreadyExists, Reason
from libs.seedwork.shared_kernel import MessageType, Purpose, TargetKind


@dataclass(frozen=True, kw_only=True)
class IntentRequest:
    """The fields of a new intent, as a client sends them (validated by `MessageIntent.create`)."""

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
    pinned_instance_id: str = ""  # "" or the only instance that may send it
    actor: str = ""  # who asks ("key:<id>", "service"); recorded on IntentCreated, not part of the request


@dataclass(frozen=True)
class CreationResult:
    intent: MessageIntent
    replayed: bool


# What a use case does to the new intent inside the transaction that stores it (SubmitIntent decides it),
# and how to undo it when that transaction is not committed.
BeforeStore = Callable[[MessageIntent], Awaitable[Decision]]
Undo = Callable[[Decision], Awaitable[None]]


class IdempotentIntentStore:
    """Stores new intents once per idempotency key.

    The same key returns the intent it first created (replayed); the same key with a different request is
    AlreadyExists. Concurrent identical requests in this process wait for the first one; across replicas
    (or after a restart) storage's unique (organization, key) settles it.
    """

    def __init__(
        self,
        uow: Callable[[], GateUnitOfWork],
        recent_keys: RecentIntentKeys,
        clock: Clock,
        *,
        default_validity: timedelta = DEFAULT_VALIDITY,
        max_validity: timedelta = MAX_VALIDITY,
    ) -> None:
        self._uow = uow
        self._recent = recent_keys
        self._clock = clock
        self._default_validity = default_validity
        self._max_validity = max_validity
        self._inflight: dict[tuple[str, str], asyncio.Future[CreationResult]] = {}

    def new_intent(self, request: IntentRequest) -> MessageIntent:
        return MessageIntent.create(
            organization_id=request.organization_id,
            target_kind=request.target_kind,
            target_value=request.target_value,
            type=request.type,
            purpose=request.purpose,
            origin=request.origin,
            campaign_id=request.campaign_id,
            payload=request.payload,
            idempotency_key=request.idempotency_key,
            not_before=request.not_before,
            expires_at=request.expires_at,
            now=self._clock.now(),
            default_validity=self._default_validity,
            max_validity=self._max_validity,
            pinned_instance_id=request.pinned_instance_id,
            actor=request.actor,
        )

    async def store(
        self, intent: MessageIntent, before_store: BeforeStore | None = None, undo: Undo | None = None
    ) -> CreationResult:
        if not intent.idempotency_key:
            return await self._store(intent, before_store, undo)
        key = (intent.organization_id, intent.idempotency_key)
        inflight = self._inflight.get(key)
        if inflight is not None:
            first = await asyncio.shield(inflight)
            return _replay(first.intent, intent)
        future: asyncio.Future[CreationResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._store(intent, before_store, undo)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # waiters re-raise it; nobody else has to retrieve it
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]

    async def _store(
        self, intent: MessageIntent, before_store: BeforeStore | None, undo: Undo | None
    ) -> CreationResult:
        org, key = intent.organization_id, intent.idempotency_key
        if key and (known := self._recent.intent_id(org, key)) is not None:
            async with self._uow() as uow:
                existing = await uow.intents.get(org, known)
            if existing is not None:
                return _replay(existing, intent)
        # Optimistic: a key is almost always new, so nothing is read first. The unique (organization, key)
        # catches the rest (a retry after a restart, another replica); that rare loser undoes what it did
        # (gives its rate slot back) and answers with the winner.
        async with self._uow() as uow:
            done = await before_store(intent) if before_store is not None else None
            uow.intents.add(intent)
            uow.track(intent)
            try:
                await uow.commit()
                lost = False
            except AlreadyExists:
                if not key:
                    await _undo(undo, done)
                    raise
                lost = True
            except Exception:
                # Not stored (the store refused this intent, or was unreachable): whatever the decision
                # reserved goes back, so the rate windows count only intents that exist.
                await _undo(undo, done)
                raise
        if lost:
            await _undo(undo, done)
            async with self._uow() as uow:
                existing = await uow.intents.find_by_key(org, key)
            if existing is None:
                raise AlreadyExists(
                    "a concurrent request with this idempotency key failed; retry",
                    reason=Reason.CONCURRENT_WRITE,
                    metadata={"idempotency_key": key},
                )
            self._recent.remember(org, key, existing.id)
            return _replay(existing, intent)
        if key:
            self._recent.remember(org, key, intent.id)
        return CreationResult(intent, replayed=False)


async def _undo(undo: Undo | None, done: Decision | None) -> None:
    """Undo what the use case did before storing, while the store's error is on its way to the caller."""
    if done is not None and undo is not None:
        await undo(done)


def _replay(existing: MessageIntent, attempt: MessageIntent) -> CreationResult:
    if existing.request_hash != attempt.request_hash:
        raise AlreadyExists(
            f"idempotency key {attempt.idempotency_key!r} was already used for a different request "
            f"(intent {existing.id})",
            reason=Reason.IDEMPOTENCY_KEY_REUSED,
            metadata={"intent_id": existing.id, "idempotency_key": attempt.idempotency_key},
        )
    return CreationResult(existing, replayed=True)
