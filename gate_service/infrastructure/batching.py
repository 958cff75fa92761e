"""Group commit for the hot path (ADR 0010).

Concurrent decisions hand their writes to one writer, which commits many of them (intents and their outbox
rows) in one transaction while the callers await that commit; reads by id or idempotency key are grouped
into one SELECT the same way. Under no load a batch is one item, so latency stays that of a single commit;
under load the batch grows by itself to whatever arrived during the previous commit.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from google.protobuf.message import Message
from sqlalchemy import Column, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gate_service.domain.intent import MessageIntent
from gate_service.domain.ports import IntentFilter
from gate_service.infrastructure.batch_statements import (
    INTENT_ROWS,
    LOADED_VERSION,
    OUTBOX_ROWS,
    compiled,
    insert_batch,
    to_json,
    update_decided,
)
from gate_service.infrastructure.metrics import BATCH_SIZE, REFUSED_WRITES, count_decisions
from gate_service.infrastructure.repositories import SqlAlchemyIntentRepository
from gate_service.infrastructure.rows import intent_record, intent_row, row_intent
from gate_service.infrastructure.tables import intents
from libs import tracing
from libs.db.held import HeldConnections
from libs.db.refusals import refusal, refused_for_data
from libs.messaging import envelope
from libs.messaging.tables import MessagingTables
from libs.seedwork.aggregate import AggregateRoot, DomainEvent
from libs.seedwork.clock import Clock
from libs.seedwork.errors import AlreadyExists, FailedPrecondition, Reason, RefusedByStore

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Runs `run(items)` for whatever was submitted while the previous run was busy; each submitter gets its
    own result (or exception). At most `concurrency` runs at once."""

    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        stage: str,
        max_batch: int = 256,
        concurrency: int = 1,
        linger: float = 0.0,
    ) -> None:
        self._run = run
        self._batch_size = BATCH_SIZE.labels(stage)
        self._linger = linger
        self._loaded = False
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._running < self._concurrency:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            # Let what is already due in this loop iteration (other requests) join the first batch; under
            # load (the last batch had company) a short linger makes batches, and the cost per item, smaller.
            await asyncio.sleep(self._linger if self._loaded else 0)
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                self._loaded = len(batch) > 1
                self._batch_size.observe(len(batch))
                try:
                    results: Sequence[Any] = await self._run([item for item, _ in batch])
                except BaseException as exc:
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._running -= 1


@dataclass
class WriteRequest:
    inserts: list[MessageIntent] = field(default_factory=list)
    updates: list[tuple[MessageIntent, int]] = field(default_factory=list)  # with the version it was read at
    events: list[DomainEvent] = field(default_factory=list)
    # Each event's trace context, taken where the unit was committed: the writer runs in its own task.
    trace_contexts: list[str | None] = field(default_factory=list)


class GroupCommitWriter:
    """Commits many units of work in one transaction. A unit whose insert clashes on the idempotency key
    (AlreadyExists), whose update lost an optimistic race (FailedPrecondition) or whose data the store
    refuses (RefusedByStore) fails alone: its rows and events are left out, the others commit."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        tables: MessagingTables,
        to_message: Callable[[DomainEvent], Message],
        clock: Clock,
        on_commit: Callable[[], None] | None = None,
        max_batch: int = 256,
        concurrency: int = 1,
        linger: float = 0.0,
    ) -> None:
        self._connections = HeldConnections(engine)
        self._insert_batch = compiled(insert_batch(tables.outbox))
        self._update_decided = compiled(update_decided)
        self._to_message = to_message
        self._clock = clock
        self._on_commit = on_commit
        self._coalescer: Coalescer[WriteRequest, None] = Coalescer(
            self._commit, stage="commit", max_batch=max_batch, concurrency=concurrency, linger=linger
        )

    async def write(self, request: WriteRequest) -> None:
        await self._coalescer.submit(request)

    async def close(self) -> None:
        await self._connections.close()

    async def _commit(self, requests: list[WriteRequest]) -> list[BaseException | None]:
        async with self._connections.connection() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            results = await self._isolating(driver, requests)
        if self._on_commit is not None and any(
            result is None and request.events for result, request in zip(results, requests, strict=True)
        ):
            self._on_commit()
        return results

    async def _isolating(self, driver: Any, requests: list[WriteRequest]) -> list[BaseException | None]:
        """The batch's transaction; when the store refuses it for one unit's data, the halves are written
        apart, and so on, until every good unit is written and each refused one has its own error (ADR
        0031). A failed transaction leaves nothing behind, so a unit is never written twice. Anything else
        (connection lost, server down) fails the whole batch: splitting would only repeat it."""
        try:
            return await self._transaction(driver, requests)
        except Exception as exc:
            if not refused_for_data(exc):
                raise
            if len(requests) == 1:
                return [self._refusal(exc, requests[0])]
            middle = len(requests) // 2
            return [
                *await self._isolating(driver, requests[:middle]),
                *await self._isolating(driver, requests[middle:]),
            ]

    def _refusal(self, exc: BaseException, request: WriteRequest) -> RefusedByStore:
        REFUSED_WRITES.inc()
        now = self._clock.now()
        rows = [(intents, intent_record(intent, now)) for intent in request.inserts]
        rows += [(intents, intent_record(intent, now)) for intent, _ in request.updates]
        return refusal(exc, rows, fields=_REQUEST_FIELDS)

    async def _transaction(self, driver: Any, requests: list[WriteRequest]) -> list[BaseException | None]:
        """Units that only insert (SubmitIntent, CreateIntent: nearly all of them) go in one statement, which
        is a transaction of its own: in autocommit it costs one round trip instead of three (BEGIN, it,
        COMMIT). Units that update (DecideIntent) each need a savepoint inside a real transaction, so that
        one lost race leaves nothing of its unit behind."""
        now = self._clock.now()
        results: list[BaseException | None] = [None] * len(requests)
        inserting = [unit for unit, request in enumerate(requests) if not request.updates]
        updating = [unit for unit, request in enumerate(requests) if request.updates]
        await driver.set_autocommit(True)
        try:
            async with driver.transaction() if updating else contextlib.nullcontext():
                for unit in updating:
                    results[unit] = await self._write_updating_unit(driver, requests[unit], now)
                for unit in await self._insert(driver, [(unit, requests[unit]) for unit in inserting], now):
                    results[unit] = AlreadyExists("a concurrent write got there first")
        finally:
            await driver.set_autocommit(False)  # the pool's other users expect transactions
        return results

    async def _write_updating_unit(
        self, driver: Any, request: WriteRequest, now: datetime
    ) -> BaseException | None:
        try:
            async with driver.transaction():  # a savepoint
                for intent, loaded_version in request.updates:
                    cursor = await driver.execute(
                        self._update_decided,
                        {**intent_row(intent, now), "b_id": intent.id, LOADED_VERSION: loaded_version},
                        prepare=True,
                    )
                    if cursor.rowcount != 1:
                        raise _lost_race(intent)
                if await self._insert(driver, [(0, request)], now):
                    raise AlreadyExists("a concurrent write got there first", reason=Reason.CONCURRENT_WRITE)
        except (AlreadyExists, FailedPrecondition) as failure:
            return failure
        except Exception as exc:
            if not refused_for_data(exc):
                raise
            return self._refusal(exc, request)  # its savepoint is rolled back; the others stand
        return None

    async def _insert(self, driver: Any, units: list[tuple[int, WriteRequest]], now: datetime) -> list[int]:
        """The units' new intents and events in one statement; returns the units that clashed."""
        if not any(request.inserts or request.events for _, request in units):
            return []
        intent_rows = [
            {"unit": unit, **intent_record(intent, now)}
            for unit, request in units
            for intent in request.inserts
        ]
        outbox_rows = [
            {
                "unit": unit,
                "n": n,
                "event_id": encoded.event_id,
                "subject": encoded.subject_suffix,
                "type_name": encoded.type_name,
                "payload": encoded.payload,
                "created_at": now,
                "trace_context": trace_context,
            }
            for n, (unit, encoded, trace_context) in enumerate(
                (unit, envelope.encode(self._to_message(event)), trace_context)
                for unit, request in units
                for event, trace_context in zip(
                    request.events, request.trace_contexts or [None] * len(request.events), strict=True
                )
            )
        ]
        cursor = await driver.execute(
            self._insert_batch,
            {INTENT_ROWS: to_json(intent_rows), OUTBOX_ROWS: to_json(outbox_rows)},
            prepare=True,
        )
        return [unit for (unit,) in await cursor.fetchall()]


# Columns named differently in the request, for the refusal's field violations.
_REQUEST_FIELDS = {"target_kind": "target.kind", "target_value": "target.value"}


def _lost_race(intent: MessageIntent) -> FailedPrecondition:
    return FailedPrecondition(f"intent {intent.id} was changed concurrently; retry")


class IntentReader:
    """Point reads of the hot path (by id, by idempotency key), grouped into one SELECT per batch; the rarer
    reads (lists, claims) through a session of their own."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, *, concurrency: int = 2
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._by_id: Coalescer[tuple[str, str], MessageIntent | None] = Coalescer(
            partial(self._read_where, intents.c.id), stage="read_by_id", concurrency=concurrency
        )
        self._by_key: Coalescer[tuple[str, str], MessageIntent | None] = Coalescer(
            partial(self._read_where, intents.c.idempotency_key), stage="read_by_key", concurrency=concurrency
        )

    async def get(self, organization_id: str, intent_id: str) -> MessageIntent | None:
        return await self._by_id.submit((organization_id, intent_id))

    async def find_by_key(self, organization_id: str, key: str) -> MessageIntent | None:
        return await self._by_key.submit((organization_id, key))

    async def read(
        self, query: Callable[[SqlAlchemyIntentRepository], Awaitable[list[MessageIntent]]]
    ) -> list[MessageIntent]:
        """Run one of the session repository's reads in a short session of its own."""
        async with self._sessions() as session:
            return await query(SqlAlchemyIntentRepository(session, self._clock))

    async def _read_where(
        self, column: Column[Any], wanted: list[tuple[str, str]]
    ) -> list[MessageIntent | BaseException | None]:
        """One SELECT for every wanted (organization, `column` value); None for those not found."""
        async with self._sessions() as session:
            rows = (await session.execute(select(intents).where(column.in_({v for _, v in wanted})))).all()
        found = {(row.organization_id, getattr(row, column.name)): row for row in rows}
        return [row_intent(found[w]) if w in found else None for w in wanted]


class BatchedIntentRepository:
    """The intent repository of a batched unit of work: reads grouped with other calls' reads, writes
    handed to the group commit. No transaction is held before the commit, so claims are optimistic: an
    intent claimed by two units is saved by the first, and the other's commit fails (FailedPrecondition)."""

    def __init__(self, reader: IntentReader) -> None:
        self._reader = reader
        self._added: list[MessageIntent] = []
        self._loaded: dict[str, tuple[MessageIntent, int]] = {}

    def add(self, intent: MessageIntent) -> None:
        self._added.append(intent)

    async def get(self, organization_id: str, intent_id: str) -> MessageIntent | None:
        return self._remember(await self._reader.get(organization_id, intent_id))

    async def get_many(self, keys: Sequence[tuple[str, str]]) -> builtins.list[MessageIntent]:
        return self._remember_all(await self._reader.read(lambda repository: repository.get_many(keys)))

    async def find_by_key(self, organization_id: str, idempotency_key: str) -> MessageIntent | None:
        return self._remember(await self._reader.find_by_key(organization_id, idempotency_key))

    async def list(
        self, organization_id: str, *, after_id: str | None, limit: int, where: IntentFilter
    ) -> list[MessageIntent]:
        return await self._reader.read(
            lambda repository: repository.list(organization_id, after_id=after_id, limit=limit, where=where)
        )

    async def claim_due(self, now: datetime, limit: int) -> builtins.list[MessageIntent]:
        return self._remember_all(
            await self._reader.read(lambda repository: repository.claim_due(now, limit))
        )

    async def claim_awaiting_instance(self, organization_id: str, limit: int) -> builtins.list[MessageIntent]:
        return self._remember_all(
            await self._reader.read(
                lambda repository: repository.claim_awaiting_instance(organization_id, limit)
            )
        )

    def _remember(self, intent: MessageIntent | None) -> MessageIntent | None:
        if intent is not None:
            self._loaded[intent.id] = (intent, intent.version)
        return intent

    def _remember_all(self, intents: builtins.list[MessageIntent]) -> builtins.list[MessageIntent]:
        for intent in intents:
            self._remember(intent)
        return intents

    def take_writes(self) -> tuple[builtins.list[MessageIntent], builtins.list[tuple[MessageIntent, int]]]:
        """What to write at commit: new intents, and loaded ones that changed (with their loaded version).
        Afterwards the changed ones count as loaded at their new version."""
        added, self._added = self._added, []
        changed = [(i, v) for i, v in self._loaded.values() if i.version != v]
        for intent, _ in changed:
            self._loaded[intent.id] = (intent, intent.version)
        return added, changed

    def forget_writes(self) -> None:
        self._added = []
        self._loaded = {}


class BatchingGateUnitOfWork:
    """The unit of work of the hot path (SubmitIntent, CreateIntent, DecideIntent, GetIntent): the same
    contract as SqlAlchemyGateUnitOfWork, but `commit()` joins a group commit."""

    def __init__(self, writer: GroupCommitWriter, reader: IntentReader) -> None:
        self._writer = writer
        self._reader = reader

    async def __aenter__(self) -> Self:
        self.intents = BatchedIntentRepository(self._reader)
        self._tracked: list[AggregateRoot] = []
        self._emitted: list[DomainEvent] = []
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.rollback()

    def track(self, aggregate: AggregateRoot) -> None:
        if all(aggregate is not seen for seen in self._tracked):
            self._tracked.append(aggregate)

    def emit(self, event: DomainEvent) -> None:
        self._emitted.append(event)

    async def commit(self) -> None:
        inserts, updates = self.intents.take_writes()
        events = [e for a in self._tracked for e in a.pull_events()] + self._emitted
        self._tracked, self._emitted = [], []
        if inserts or updates or events:
            traces = [tracing.outbox_context(e.correlation_id or e.aggregate_id) for e in events]
            await self._writer.write(WriteRequest(inserts, updates, events, traces))
            count_decisions(events)  # committed: write raises otherwise

    async def rollback(self) -> None:
        for aggregate in self._tracked:
            aggregate.pull_events()
        self._tracked, self._emitted = [], []
        self.intents.forget_writes()
