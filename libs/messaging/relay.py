"""Outbox relay: moves committed events from the service's outbox table to JetStream.

A row is marked published only after JetStream acknowledged it, so a crash between the two re-sends it;
the `Nats-Msg-Id` header (the event id) lets JetStream drop that repeat, and consumers' inboxes drop any
repeat older than the stream's duplicate window. Several replicas can run relays: each pass locks its rows
with SKIP LOCKED.

A row that cannot be published (larger than the server's max_payload, a subject no stream takes) does not
hold back the rows behind it (ADR 0031): when a pass fails for a reason that may be one event's, its rows
are published one by one, the others go out, and the refused one has an attempt counted; after
`max_attempts` it is parked (`parked_at`, one WARNING, `whatlead_outbox_parked_total`) and left for review.
A failure that is the connection's or the server's (NATS down, timeouts) fails the pass as before and
counts nothing, so an outage never parks a row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from nats.errors import BadSubjectError, MaxPayloadError
from nats.js.errors import APIError, NoStreamResponseError
from sqlalchemy import Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs import tracing
from libs.db.held import HeldConnections
from libs.messaging import envelope
from libs.messaging.metrics import (
    OUTBOX_DUPLICATES,
    OUTBOX_PARKED,
    OUTBOX_PUBLISH_ERRORS,
    OUTBOX_PUBLISHED,
    report_outbox_backlog,
)
from libs.messaging.publisher import EventPublisher, OutgoingEvent
from libs.messaging.streams import MAX_AGE_SECONDS
from libs.messaging.tracing import publishing_span
from libs.periodic import pause, run_periodically
from libs.seedwork.clock import Clock
from libs.stores import StoreOutages

log = logging.getLogger(__name__)

# The client refuses the event itself, whatever the server's state: about this row for sure.
_EVENT_REFUSED = (MaxPayloadError, BadSubjectError)
# The server refused one publication: about the row when others of the pass went through; alone, it may be
# JetStream that is not ready (starting up, a stream being recreated), so it counts nothing then.
_MAYBE_EVENT_REFUSED = (*_EVENT_REFUSED, NoStreamResponseError, APIError)


class OutboxRelay:
    def __init__(
        self,
        *,
        service: str,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Table,
        publisher: EventPublisher,
        inbox: Table | None = None,
        subject_root: str,
        clock: Clock,
        outages: StoreOutages | None = None,
        batch_size: int = 256,
        idle_interval: float = 0.5,
        max_backoff: float = 5.0,
        retention: timedelta = timedelta(days=1),
        inbox_retention: timedelta = timedelta(seconds=MAX_AGE_SECONDS) + timedelta(days=1),
        max_attempts: int = 5,
        backlog_interval: float = 5.0,
    ) -> None:
        self._service = service
        self._backlog_interval = backlog_interval
        self._sessions = sessions
        self._outbox = outbox
        self._inbox = inbox
        self._publisher = publisher
        self._root = subject_root
        self._clock = clock
        self._outages = outages or StoreOutages(service)
        self._batch_size = batch_size
        self._idle_interval = idle_interval
        self._max_backoff = max_backoff
        self._retention = retention
        self._inbox_retention = inbox_retention
        self._max_attempts = max_attempts
        self._wakeup = asyncio.Event()
        self._flush_waiters: list[asyncio.Future[None]] = []  # see `flushed`
        self._held = HeldConnections(sessions.kw["bind"])
        # SKIP LOCKED: relays of other replicas take the rows after these rather than wait for them.
        self._lock = (
            f"SELECT position, event_id, subject, type_name, payload, trace_context FROM {outbox.name} "
            "WHERE published_at IS NULL AND parked_at IS NULL "
            "ORDER BY position LIMIT %s FOR UPDATE SKIP LOCKED"
        )
        self._mark = f"UPDATE {outbox.name} SET published_at = %s WHERE position = ANY(%s)"
        self._refused = (
            f"UPDATE {outbox.name} SET publish_attempts = publish_attempts + 1, last_error = %s, "
            "parked_at = CASE WHEN publish_attempts + 1 >= %s THEN %s END "
            "WHERE position = %s RETURNING parked_at IS NOT NULL, publish_attempts"
        )

    def wake(self) -> None:
        """Called after a commit that wrote events, so they leave now rather than at the next poll."""
        self._wakeup.set()

    async def flushed(self, timeout: float) -> bool:
        """Wait, after a commit, until the events committed so far have left: a pass of this relay that
        started after the call ended with nothing left to take (rows another replica's relay holds are in
        its hands). At most `timeout` seconds (NATS or the database away: the relay keeps trying on its
        own). True when they left."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(waiter)
        self.wake()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            if waiter in self._flush_waiters:
                self._flush_waiters.remove(waiter)

    async def publish_pending(self) -> int:
        """One pass: publish up to a batch of unpublished rows in order; returns how many."""
        # The hot path of every service: a connection of its own and prepared statements on the driver,
        # without the pool's checkout and ping or the ORM's per-statement work.
        async with self._held.connection() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            if driver is None:
                raise RuntimeError("the outbox relay's connection is closed")
            async with driver.transaction():
                published, failure = await self._publish_rows(driver)
        if failure is not None:
            raise failure  # after the commit: what went out stays marked, and the pass backs off
        return published

    async def close(self) -> None:
        await self._held.close()

    async def _publish_rows(self, driver: Any) -> tuple[int, Exception | None]:
        cursor = await driver.execute(self._lock, (self._batch_size,), prepare=True)
        rows = await cursor.fetchall()
        if not rows:
            return 0, None
        failure: Exception | None = None
        try:
            published = await self._publish(rows)
        except _MAYBE_EVENT_REFUSED as exc:
            published, failure = await self._publish_one_by_one(driver, rows, exc)
        if published:
            await driver.execute(self._mark, (self._clock.now(), [row[0] for row in published]), prepare=True)
        return len(published), failure

    async def _publish(self, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        """(position, event_id, subject, type_name, payload, trace_context) rows, in outbox order; returns
        them once all are stored."""
        events = []
        spans = []
        for _, event_id, subject, type_name, payload, trace_context in rows:
            headers = {envelope.MSG_ID_HEADER: event_id, envelope.TYPE_HEADER: type_name}
            # Continues the trace the row was written in; the span's context rides in the headers.
            spans.append(publishing_span(self._service, subject, type_name, event_id, trace_context, headers))
            events.append(OutgoingEvent(envelope.full_subject(self._root, subject), payload, headers))
        try:
            duplicates = await self._publisher.publish_all(events)
        except BaseException as exc:
            tracing.end_all(spans, exc)
            raise
        tracing.end_all(spans)
        OUTBOX_PUBLISHED.labels(self._service).inc(len(rows))
        OUTBOX_DUPLICATES.labels(self._service).inc(sum(duplicates))
        return rows

    async def _publish_one_by_one(
        self, driver: Any, rows: Sequence[Sequence[Any]], first: Exception
    ) -> tuple[list[Sequence[Any]], Exception | None]:
        """After a pass failed for what may be one event: each row on its own, in order. Returns the rows
        published, and the error to fail the pass with when nothing shows that the refusals are the rows'
        (none went through and none was refused by the client itself): then nothing is counted."""
        published: list[Sequence[Any]] = []
        refused: list[tuple[Sequence[Any], Exception]] = []
        for row in rows:
            try:
                published.extend(await self._publish([row]))
            except _MAYBE_EVENT_REFUSED as refusal:  # anything else (connection, timeout) fails the pass
                refused.append((row, refusal))
        counted = [(row, error) for row, error in refused if published or isinstance(error, _EVENT_REFUSED)]
        for row, error in counted:
            await self._count_refusal(driver, row, error)
        return published, (first if len(counted) < len(refused) else None)

    async def _count_refusal(self, driver: Any, row: Sequence[Any], exc: Exception) -> None:
        position, event_id, subject, type_name, *_ = row
        error = type(exc).__name__  # the kind only: a message could quote the payload
        cursor = await driver.execute(
            self._refused, (error, self._max_attempts, self._clock.now(), position), prepare=True
        )
        parked, attempts = await cursor.fetchone()
        if parked:
            OUTBOX_PARKED.labels(self._service).inc()
            log.warning(
                "outbox event parked for review: JetStream refused it",
                extra={
                    "event_id": event_id,
                    "type": type_name,
                    "subject": subject,
                    "attempts": attempts,
                    "error": error,
                },
            )

    async def pending_count(self) -> int:
        async with self._sessions() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(self._outbox)
                    .where(self._outbox.c.published_at.is_(None), self._outbox.c.parked_at.is_(None))
                )
                or 0
            )

    async def report_backlog(self) -> None:
        """Sets the backlog's gauges: unpublished rows and the age of the oldest, from the table itself, so
        they keep rising while passes fail (NATS away)."""
        async with self._sessions() as session:
            waiting = self._outbox.c.published_at.is_(None) & self._outbox.c.parked_at.is_(None)
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(self._outbox.c.created_at))
                    .select_from(self._outbox)
                    .where(waiting)
                )
            ).one()
        report_outbox_backlog(self._service, int(count or 0), oldest, self._clock.now())

    async def purge(self) -> None:
        """Housekeeping: published outbox rows are kept a while for inspection; inbox rows only as long as
        JetStream could still redeliver their event (the stream's max age), then both are removed."""
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(self._outbox).where(self._outbox.c.published_at < now - self._retention)
            )
            if self._inbox is not None:
                await session.execute(
                    delete(self._inbox).where(self._inbox.c.processed_at < now - self._inbox_retention)
                )

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop`; beside it, check the backlog every `backlog_interval` seconds."""
        backlog = asyncio.create_task(
            run_periodically(
                stop,
                self.report_backlog,
                every=self._backlog_interval,
                name="outbox backlog check",
                outages=self._outages,
                log=log,
            )
        )
        try:
            await self._publish_until(stop)
        finally:
            backlog.cancel()

    async def _publish_until(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        passes = 0
        while not stop.is_set():
            # Cleared before the pass, not after: a commit that lands while the pass runs (after its
            # SELECT) keeps the flag set, so its events leave at once instead of after `idle_interval`.
            self._wakeup.clear()
            # Their commits came before this pass's SELECT: once it leaves nothing behind, they left.
            flushing, self._flush_waiters = self._flush_waiters, []
            try:
                published = await self.publish_pending()
                if published < self._batch_size:
                    _release(flushing)
                    flushing = []
                backoff = 0.1
                passes += 1
                if passes % 1000 == 1:
                    await self.purge()
                if published == self._batch_size:
                    self._flush_waiters[:0] = flushing  # more waiting: the next pass settles them
                    continue  # no sleep
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS down, timeouts, database hiccups: keep trying
                OUTBOX_PUBLISH_ERRORS.labels(self._service).inc()
                self._flush_waiters[:0] = [waiter for waiter in flushing if not waiter.done()]
                if self._outages.report(exc) is None:  # an outage is logged once, not once a pass
                    log.warning("outbox relay pass failed, retrying", extra={"error": type(exc).__name__})
                await pause(stop, backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            await _wait_any(stop, self._wakeup, self._idle_interval)


def _release(waiters: Sequence[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


async def _wait_any(stop: asyncio.Event, wakeup: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wakeup.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
