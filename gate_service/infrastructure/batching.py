"""Group commit for the hot path (ADR 0010).

Concurrent decisions hand their writes to one writer, which commits many of them (intents and their outbox
rows) in one transaction while the callers await that commit; reads by id or idempotency key are grouped
into one SELECT the same way. Under no load a batch is one item, so latency stays that of a single commit;
under load the batch grows by itself to whatever arrived during the previous commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import orjson
from google.protobuf.message import Message
from prometheus_client import Histogram
from sqlalchemy import Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from gate_service.domain.intent import MessageIntent
from gate_service.infrastructure.rows import intent_record, intent_row, row_intent
from gate_service.infrastructure.tables import intents
from libs.db.held import HeldConnections
from libs.messaging import envelope
from libs.messaging.envelope import EncodedEvent
from libs.messaging.tables import MessagingTables
from libs.seedwork.aggregate import AggregateRoot, DomainEvent
from libs.seedwork.clock import Clock
from libs.seedwork.errors import AlreadyExists, FailedPrecondition

T = TypeVar("T")
R = TypeVar("R")

BATCH_SIZE = Histogram(
    "whatlead_gate_batch_size",
    "Items per coalesced batch (group commit, grouped reads, Redis script calls): 1 means nothing batched",
    ["stage"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)


class Coalescer(Generic[T, R]):
    """Runs `run(items)` for whatever was submitted while the previous run was busy; each submitter gets its
    own result (or exception). At most `concurrency` runs at once."""

    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[list[R | BaseException]]],
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
                    results: list[Any] = await self._run([item for item, _ in batch])
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


class GroupCommitWriter:
    """Commits many units of work in one transaction. A unit whose insert clashes on the idempotency key
    (AlreadyExists) or whose update lost an optimistic race (FailedPrecondition) fails alone: its rows and
    events are left out, the others commit."""

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
        self._tables = tables
        self._postgres_write = _postgres_write(tables.outbox)
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
            results, published = await self._transaction(connection, requests)
        if published and self._on_commit is not None:
            self._on_commit()
        return results

    async def _transaction(
        self, connection: AsyncConnection, requests: list[WriteRequest]
    ) -> tuple[list[BaseException | None], bool]:
        now = self._clock.now()
        events = [
            (unit, envelope.encode(self._to_message(event)))
            for unit, request in enumerate(requests)
            for event in request.events
        ]
        if connection.dialect.name == "postgresql":
            results = await self._write_postgres(connection, requests, events, now)
        else:
            results = await self._write_sqlite(connection, requests, events, now)
        return results, any(results[unit] is None for unit, _ in events)

    async def _write_postgres(
        self,
        connection: AsyncConnection,
        requests: list[WriteRequest],
        events: list[tuple[int, EncodedEvent]],
        now: datetime,
    ) -> list[BaseException | None]:
        """The hot path on PostgreSQL: every insert and outbox row of the batch in one statement (rows as
        one JSON parameter: a constant, prepared statement whatever the batch size). One statement is a
        transaction of its own: in autocommit it costs one round trip instead of three (BEGIN, it, COMMIT).
        Units with an update (DecideIntent) need a real transaction around the updates and the statement."""
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        updates = any(request.updates for request in requests)
        await driver.set_autocommit(True)
        try:
            async with driver.transaction() if updates else contextlib.nullcontext():
                return await self._write_postgres_rows(driver, requests, events, now)
        finally:
            await driver.set_autocommit(False)  # the pool's other users expect transactions

    async def _write_postgres_rows(
        self, driver: Any, requests: list[WriteRequest], events: list[tuple[int, EncodedEvent]], now: datetime
    ) -> list[BaseException | None]:
        results = await self._update_one_by_one_postgres(driver, requests, now)
        intent_rows = [
            {"unit": unit, **intent_record(intent, now)}
            for unit, request in enumerate(requests)
            if not request.updates
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
            }
            for n, (unit, encoded) in enumerate(events)
            if results[unit] is None
        ]
        cursor = await driver.execute(
            self._postgres_write, (_to_json(intent_rows), _to_json(outbox_rows)), prepare=True
        )
        for (unit,) in await cursor.fetchall():
            results[unit] = AlreadyExists("a concurrent write got there first")
        return results

    async def _update_one_by_one_postgres(
        self, driver: Any, requests: list[WriteRequest], now: datetime
    ) -> list[BaseException | None]:
        # Units with an update (DecideIntent: exactly one intent) run one by one; an update that matches no
        # row lost an optimistic race and wrote nothing.
        results: list[BaseException | None] = [None] * len(requests)
        for unit, request in enumerate(requests):
            if request.updates:
                [(intent, loaded_version)] = request.updates
                cursor = await driver.execute(
                    _POSTGRES_UPDATE, (_to_json(intent_record(intent, now)), loaded_version), prepare=True
                )
                if cursor.rowcount != 1:
                    results[unit] = _lost_race(intent)
        return results

    async def _write_sqlite(
        self,
        connection: AsyncConnection,
        requests: list[WriteRequest],
        events: list[tuple[int, EncodedEvent]],
        now: datetime,
    ) -> list[BaseException | None]:
        """SQLite, the embedded default: the same writes through SQLAlchemy Core."""
        results: list[BaseException | None] = [None] * len(requests)
        async with connection.begin():
            for unit, request in enumerate(requests):
                if not request.updates:
                    continue
                [(intent, loaded_version)] = request.updates
                result = await connection.execute(
                    update(intents)
                    .where(intents.c.id == intent.id, intents.c.version == loaded_version)
                    .values(intent_row(intent, now))
                )
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    results[unit] = _lost_race(intent)
            rows = [
                intent_row(intent, now)
                for request in requests
                if not request.updates
                for intent in request.inserts
            ]
            if rows:
                statement = sqlite.insert(intents).on_conflict_do_nothing().returning(intents.c.id)
                inserted = set((await connection.execute(statement, rows)).scalars())
                for unit, request in enumerate(requests):
                    if not request.updates and any(i.id not in inserted for i in request.inserts):
                        results[unit] = AlreadyExists("a concurrent write got there first")
            outbox = [
                {
                    "event_id": encoded.event_id,
                    "subject": encoded.subject_suffix,
                    "type_name": encoded.type_name,
                    "payload": encoded.payload,
                    "created_at": now,
                }
                for unit, encoded in events
                if results[unit] is None
            ]
            if outbox:
                await connection.execute(insert(self._tables.outbox), outbox)
        return results


def _lost_race(intent: MessageIntent) -> FailedPrecondition:
    return FailedPrecondition(f"intent {intent.id} was changed concurrently; retry")


def _bytea(value: object) -> str:
    if isinstance(value, bytes):
        return "\\x" + value.hex()  # bytea's hex input format
    raise TypeError(type(value).__name__)


def _to_json(rows: object) -> str:
    # orjson writes datetimes as RFC 3339 itself; only the outbox payloads need the callback.
    return orjson.dumps(rows, default=_bytea).decode()


def _record_of(table: Table, *, extra: str = "", skip: tuple[str, ...] = ()) -> str:
    """`name type, ...` of a table's columns, for json_to_recordset's column definition list."""
    dialect = postgresql.dialect()
    columns = [f"{c.name} {c.type.compile(dialect=dialect)}" for c in table.columns if c.name not in skip]
    return ", ".join([extra, *columns] if extra else columns)


_INTENT_COLUMNS = ", ".join(c.name for c in intents.columns)
_POSTGRES_UPDATE = f"""
UPDATE intents SET ({_INTENT_COLUMNS}) = ({", ".join("r." + c.name for c in intents.columns)})
FROM json_populate_record(null::intents, %s::json) AS r
WHERE intents.id = r.id AND intents.version = %s
"""


def _postgres_write(outbox: Table) -> str:
    """Inserts the intents, reports which units clashed on the idempotency key and leaves their outbox rows
    out, in one statement; ORDER BY keeps each unit's events in the order they happened (the position)."""
    events = _record_of(outbox, extra="unit int, n int", skip=("position", "published_at"))
    return f"""
WITH given AS (
    SELECT * FROM json_to_recordset(%s::json) AS g({_record_of(intents, extra="unit int")})
), inserted AS (
    INSERT INTO intents ({_INTENT_COLUMNS}) SELECT {_INTENT_COLUMNS} FROM given
    ON CONFLICT DO NOTHING RETURNING id
), clashed AS (
    SELECT DISTINCT unit FROM given WHERE id NOT IN (SELECT id FROM inserted)
), published AS (
    INSERT INTO {outbox.name} (event_id, subject, type_name, payload, created_at)
    SELECT event_id, subject, type_name, payload, created_at FROM json_to_recordset(%s::json) AS e({events})
    WHERE unit NOT IN (SELECT unit FROM clashed)
    ORDER BY n
)
SELECT unit FROM clashed
"""


class IntentReader:
    """Point reads of the hot path (by id, by idempotency key), grouped into one SELECT per batch."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, concurrency: int = 2) -> None:
        self._sessions = sessions
        self._by_id: Coalescer[tuple[str, str], MessageIntent | None] = Coalescer(
            self._read_ids, stage="read_by_id", concurrency=concurrency
        )
        self._by_key: Coalescer[tuple[str, str], MessageIntent | None] = Coalescer(
            self._read_keys, stage="read_by_key", concurrency=concurrency
        )

    async def get(self, organization_id: str, intent_id: str) -> MessageIntent | None:
        return await self._by_id.submit((organization_id, intent_id))

    async def find_by_key(self, organization_id: str, key: str) -> MessageIntent | None:
        return await self._by_key.submit((organization_id, key))

    async def _read_ids(self, wanted: list[tuple[str, str]]) -> list[MessageIntent | BaseException | None]:
        async with self._sessions() as session:
            rows = (
                await session.execute(select(intents).where(intents.c.id.in_({i for _, i in wanted})))
            ).all()
        found = {(row.organization_id, row.id): row for row in rows}
        return [row_intent(found[w]) if w in found else None for w in wanted]

    async def _read_keys(self, wanted: list[tuple[str, str]]) -> list[MessageIntent | BaseException | None]:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(intents).where(intents.c.idempotency_key.in_({k for _, k in wanted}))
                )
            ).all()
        found = {(row.organization_id, row.idempotency_key): row for row in rows}
        return [row_intent(found[w]) if w in found else None for w in wanted]


class _BatchedIntents:
    def __init__(self, reader: IntentReader, request: WriteRequest) -> None:
        self._reader = reader
        self._request = request
        self._loaded: dict[str, tuple[MessageIntent, int]] = {}

    def add(self, intent: MessageIntent) -> None:
        self._request.inserts.append(intent)

    async def get(self, organization_id: str, intent_id: str) -> MessageIntent | None:
        return self._remember(await self._reader.get(organization_id, intent_id))

    async def find_by_key(self, organization_id: str, key: str) -> MessageIntent | None:
        return self._remember(await self._reader.find_by_key(organization_id, key))

    def _remember(self, intent: MessageIntent | None) -> MessageIntent | None:
        if intent is not None:
            self._loaded[intent.id] = (intent, intent.version)
        return intent

    def changed(self) -> list[tuple[MessageIntent, int]]:
        return [(i, v) for i, v in self._loaded.values() if i.version != v]


class BatchingGateUnitOfWork:
    """The unit of work of the hot path (SubmitIntent, CreateIntent, DecideIntent, GetIntent): the same
    contract as SqlAlchemyGateUnitOfWork for these use cases, but `commit()` joins a group commit."""

    def __init__(self, writer: GroupCommitWriter, reader: IntentReader) -> None:
        self._writer = writer
        self._reader = reader

    async def __aenter__(self) -> Self:
        self._request = WriteRequest()
        self.intents = _BatchedIntents(self._reader, self._request)
        self._tracked: list[AggregateRoot] = []
        self._emitted: list[DomainEvent] = []
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.rollback()

    @property
    def projections(self) -> Any:
        raise NotImplementedError("projections are written by consumers, through SqlAlchemyGateUnitOfWork")

    def track(self, aggregate: AggregateRoot) -> None:
        if all(aggregate is not seen for seen in self._tracked):
            self._tracked.append(aggregate)

    def emit(self, event: DomainEvent) -> None:
        self._emitted.append(event)

    async def first_time(self, consumer: str, event_id: str) -> bool:
        raise NotImplementedError("consumers use SqlAlchemyGateUnitOfWork")

    async def commit(self) -> None:
        request = self._request
        request.updates = self.intents.changed()
        if len(request.updates) > 1 or (request.updates and request.inserts):
            raise NotImplementedError("a batched unit of work changes one intent, or only inserts")
        request.events = [e for a in self._tracked for e in a.pull_events()] + self._emitted
        self._emitted = []
        self._tracked = []
        if request.inserts or request.updates or request.events:
            await self._writer.write(request)
        self.intents._loaded = {i.id: (i, i.version) for i, _ in request.updates}
        self._request = WriteRequest()
        self.intents._request = self._request

    async def rollback(self) -> None:
        for aggregate in self._tracked:
            aggregate.pull_events()
        self._tracked, self._emitted = [], []
