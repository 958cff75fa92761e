"""SQLAlchemy unit of work: state change and its events (the outbox rows) commit together or not at all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

from google.protobuf.message import Message
from sqlalchemy import String, bindparam, func, insert, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs import tracing
from libs.db.refusals import is_unique_violation, refusal, refused_for_data
from libs.messaging import envelope
from libs.messaging.tables import MessagingTables
from libs.seedwork.aggregate import AggregateRoot, DomainEvent
from libs.seedwork.clock import Clock
from libs.seedwork.errors import AlreadyExists, Reason

EventMapper = Callable[[DomainEvent], Message]


class SqlAlchemyUnitOfWork:
    """Base for each service's unit of work; subclasses build their repositories in `_open`. Callbacks
    registered with `after_transaction` run once the transaction has ended, told whether it committed."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        tables: MessagingTables,
        to_message: EventMapper,
        clock: Clock,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._tables = tables
        self._to_message = to_message
        self._clock = clock
        self._on_commit = on_commit
        self.session: AsyncSession

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self._tracked: list[AggregateRoot] = []
        self._emitted: list[DomainEvent] = []
        self._endings: list[Callable[[bool], None]] = []
        self._committed = False
        self._open(self.session)
        return self

    def _open(self, session: AsyncSession) -> None:
        """Build repositories on the new session."""

    async def _flush(self) -> None:
        """Write the repositories' pending changes; runs inside commit, before the outbox rows."""

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            try:
                await self.session.rollback()  # no-op after a commit
            finally:
                await self.session.close()
        finally:
            endings, self._endings = self._endings, []
            for ending in endings:
                ending(self._committed)

    def after_transaction(self, callback: Callable[[bool], None]) -> None:
        """Run `callback(committed)` once this transaction has ended, committed or not."""
        self._endings.append(callback)

    def track(self, aggregate: AggregateRoot) -> None:
        if all(aggregate is not seen for seen in self._tracked):
            self._tracked.append(aggregate)

    def emit(self, event: DomainEvent) -> None:
        self._emitted.append(event)

    async def first_time(self, consumer: str, event_id: str) -> bool:
        statement = (
            pg_insert(self._tables.inbox)
            .values(consumer=consumer, event_id=event_id, processed_at=self._clock.now())
            .on_conflict_do_nothing()
            .returning(self._tables.inbox.c.event_id)  # a row comes back only if this call inserted it
        )
        return (await self.session.execute(statement)).first() is not None

    async def first_times(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        """`first_time` for a whole consumer batch in one statement (libs.messaging.consumer.BatchInbox):
        records the inbox rows in this transaction, returns the ids not handled before."""
        if not event_ids:
            return set()
        inbox = self._tables.inbox
        now = self._clock.now()
        # The ids as one array parameter, not a row of parameters each: a large batch stays one short
        # statement for the driver to build and the server to parse.
        # In one order: two processes given the same redelivered events never wait on each other's rows.
        ids = func.unnest(bindparam("event_ids", sorted(set(event_ids)), type_=ARRAY(String)))
        statement = (
            pg_insert(inbox)
            .from_select(
                ["consumer", "event_id", "processed_at"],
                select(literal(consumer, String), ids, literal(now, inbox.c.processed_at.type)),
            )
            .on_conflict_do_nothing()
            .returning(inbox.c.event_id)
        )
        return set((await self.session.scalars(statement)).all())

    def collect_events(self) -> list[DomainEvent]:
        events = [event for aggregate in self._tracked for event in aggregate.pull_events()]
        events.extend(self._emitted)
        self._emitted = []
        return events

    async def commit(self) -> None:
        try:
            await self._flush()
            events = await self._write_outbox()
            await self.session.commit()
        except DBAPIError as exc:
            if not refused_for_data(exc):
                raise  # the connection or the server: not about what this unit wrote
            await self.session.rollback()
            if is_unique_violation(exc):
                raise AlreadyExists(
                    "a concurrent write got there first", reason=Reason.CONCURRENT_WRITE
                ) from exc
            raise refusal(exc) from exc
        self._committed = True
        if events and self._on_commit is not None:
            self._on_commit()

    async def _write_outbox(self) -> list[DomainEvent]:
        events = self.collect_events()
        if events:
            now = self._clock.now()
            rows = []
            for event in events:
                encoded = envelope.encode(self._to_message(event))
                rows.append(
                    {
                        "event_id": encoded.event_id,
                        "subject": encoded.subject_suffix,
                        "type_name": encoded.type_name,
                        "payload": encoded.payload,
                        "created_at": now,
                        # The span that caused it (the same correlation id: the consumer's event)
                        "trace_context": tracing.outbox_context(event.correlation_id or event.aggregate_id),
                    }
                )
            await self.session.execute(insert(self._tables.outbox), rows)
        return events

    async def rollback(self) -> None:
        self._emitted = []
        for aggregate in self._tracked:
            aggregate.pull_events()
        await self.session.rollback()
