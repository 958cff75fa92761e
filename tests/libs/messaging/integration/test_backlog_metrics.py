"""The backlog an operator watches, on the real servers: the age of the oldest unpublished outbox row (it
keeps rising while the relay cannot publish) and each durable consumer's lag (JetStream's num_pending and
num_ack_pending), as the shared relay and consumer report them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from nats.errors import ConnectionClosedError
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.db.engine import create_engine, session_factory
from libs.messaging import envelope
from libs.messaging.consumer import DurableConsumer, Redelivery
from libs.messaging.publisher import JetStreamPublisher, OutgoingEvent
from libs.messaging.relay import OutboxRelay
from libs.seedwork.clock import FakeClock, SystemClock
from libs.seedwork.ids import new_id
from libs.testing.waiting import eventually
from tests.libs.notes import MIGRATIONS
from tests.libs.notes.contract import CONTEXT, NoteWrittenProto, event_to_proto
from tests.libs.notes.domain import Note
from tests.libs.notes.tables import messaging
from tests.libs.notes.unit_of_work import NotesUnitOfWork

CLOCK = SystemClock()
ORGANIZATION = "org-backlog"
Sessions = async_sessionmaker[AsyncSession]
_RELAYS: list[OutboxRelay] = []  # each holds a connection of its own, closed before the engine goes


@pytest.fixture
async def sessions(migrated_database: Any) -> AsyncIterator[Sessions]:
    engine = create_engine(migrated_database("notes", MIGRATIONS))
    yield session_factory(engine)
    while _RELAYS:
        await _RELAYS.pop().close()
    await engine.dispose()


def relay_for(sessions: Sessions, publisher: Any, subject_root: str, **overrides: Any) -> OutboxRelay:
    relay = OutboxRelay(
        **{
            "service": "test",
            "sessions": sessions,
            "outbox": messaging.outbox,
            "publisher": publisher,
            "subject_root": subject_root,
            "clock": CLOCK,
            "idle_interval": 0.05,
            "max_backoff": 0.2,
            **overrides,
        }
    )
    _RELAYS.append(relay)
    return relay


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


class DownPublisher:
    """NATS unreachable: every publication fails on the connection."""

    async def publish_all(self, events: Sequence[OutgoingEvent]) -> list[bool]:
        raise ConnectionClosedError


def notes_unit_of_work(sessions: Sessions, clock: Any = CLOCK) -> NotesUnitOfWork:
    return NotesUnitOfWork(sessions, tables=messaging, to_message=event_to_proto, clock=clock)


async def write_notes(sessions: Sessions, clock: FakeClock, count: int) -> None:
    for _ in range(count):
        note = Note.write(ORGANIZATION, "hello", now=clock.now())
        async with notes_unit_of_work(sessions, clock) as uow:
            uow.notes.add(note)
            uow.track(note)
            await uow.commit()


async def test_the_oldest_unpublished_row_ages_while_nats_is_unreachable_and_is_0_once_published(
    sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    clock = FakeClock(CLOCK.now())
    service = f"backlog-{new_id()[-8:]}"
    await write_notes(sessions, clock, 2)
    clock.advance(seconds=30)
    down = relay_for(
        sessions, DownPublisher(), subject_root, service=service, clock=clock, backlog_interval=0.01
    )
    stop = asyncio.Event()
    running = asyncio.create_task(down.run(stop))

    async def aged() -> bool:
        return gauge("whatlead_outbox_oldest_age_seconds", service=service) == 30.0

    try:
        await eventually(aged, timeout=10)  # passes keep failing; the check goes on
        assert gauge("whatlead_outbox_pending", service=service) == 2.0
    finally:
        stop.set()
        await running

    up = relay_for(sessions, JetStreamPublisher(notes_stream), subject_root, service=service, clock=clock)
    await up.publish_pending()
    await up.report_backlog()
    assert gauge("whatlead_outbox_oldest_age_seconds", service=service) == 0.0
    assert gauge("whatlead_outbox_pending", service=service) == 0.0


class Applied:
    async def __call__(self, event: Any, uow: Any) -> None:
        return None


async def test_a_consumers_lag_rises_while_it_is_stopped_and_falls_once_it_consumed(
    sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    durable = f"lag-{new_id()[-8:]}"
    consumer = DurableConsumer(
        service="lag-test",
        js=notes_stream,
        subject_root=subject_root,
        context=CONTEXT,
        durable=durable,
        handlers={NoteWrittenProto: Applied()},
        uow_factory=lambda: NotesUnitOfWork(
            sessions, tables=messaging, to_message=event_to_proto, clock=CLOCK
        ),
        batch_size=10,
        fetch_timeout=0.3,
        redelivery=Redelivery(ack_wait=30.0, retry_delay=0.1),
        lag_interval=0.01,
    )
    await consumer.start()  # created, not consuming: what is published waits
    await consumer.report_lag()
    before = gauge("whatlead_consumer_pending_messages", service="lag-test", consumer=durable)
    assert before is not None
    await write_notes(sessions, FakeClock(CLOCK.now()), 3)
    await relay_for(sessions, JetStreamPublisher(notes_stream), subject_root).publish_pending()
    await consumer.report_lag()
    assert gauge("whatlead_consumer_pending_messages", service="lag-test", consumer=durable) == before + 3

    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))

    async def caught_up() -> bool:
        labels = {"service": "lag-test", "consumer": durable}
        return (
            gauge("whatlead_consumer_pending_messages", **labels) == 0.0
            and gauge("whatlead_consumer_ack_pending_messages", **labels) == 0.0
        )

    try:
        await eventually(caught_up, timeout=10)  # reported by the running consumer itself
    finally:
        stop.set()
        await running
    await notes_stream.delete_consumer(envelope.stream_name(subject_root, CONTEXT), durable)
