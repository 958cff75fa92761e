"""Exactly-once effects across a database, a relay and JetStream, proven against the real servers.

The subject is the tests' own notes context: its unit of work writes NoteWritten to its outbox.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from google.protobuf.message import Message
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import Column, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.db.engine import create_engine, session_factory
from libs.messaging import envelope
from libs.messaging.consumer import DurableConsumer, Redelivery
from libs.messaging.nats_connection import connect_nats
from libs.messaging.publisher import JetStreamPublisher
from libs.messaging.relay import OutboxRelay
from libs.messaging.streams import ensure_streams
from libs.seedwork.clock import Clock, FakeClock, SystemClock
from libs.seedwork.ids import new_id
from libs.testing.jetstream import publish, stored_events
from libs.testing.waiting import eventually
from tests.libs.notes import MIGRATIONS
from tests.libs.notes.contract import (
    CONTEXT,
    SUBJECT,
    NoteWrittenMessage,
    NoteWrittenProto,
    event_to_proto,
    note_written,
)
from tests.libs.notes.domain import Note
from tests.libs.notes.tables import messaging
from tests.libs.notes.unit_of_work import NotesUnitOfWork
from tests.sending_path import OwnNatsServer

CLOCK = SystemClock()
ORGANIZATION = "org-relay"
Sessions = async_sessionmaker[AsyncSession]


_RELAYS: list[OutboxRelay] = []  # each holds a connection of its own, closed before the engine goes


@pytest.fixture
async def sessions(migrated_database: Any) -> AsyncIterator[Sessions]:
    engine = create_engine(migrated_database("notes", MIGRATIONS))
    yield session_factory(engine)
    while _RELAYS:
        await _RELAYS.pop().close()
    await engine.dispose()


def unit_of_work(
    sessions: Sessions, relay: OutboxRelay | None = None, clock: Clock = CLOCK
) -> NotesUnitOfWork:
    return NotesUnitOfWork(
        sessions,
        tables=messaging,
        to_message=event_to_proto,
        clock=clock,
        on_commit=relay.wake if relay else None,
    )


async def write_note(sessions: Sessions, relay: OutboxRelay | None = None) -> Note:
    note = Note.write(ORGANIZATION, "hello", now=CLOCK.now())
    async with unit_of_work(sessions, relay) as uow:
        uow.notes.add(note)
        uow.track(note)
        await uow.commit()
    return note


async def notes_written(js: Any, subject_root: str, note_ids: Iterable[str]) -> list[NoteWrittenMessage]:
    """Every NoteWritten in this run's stream whose note is one of `note_ids`."""
    wanted = set(note_ids)
    stored = await stored_events(js, subject_root, CONTEXT, subject_suffix=SUBJECT)
    return [event for event in map(note_written, stored) if event.meta.aggregate_id in wanted]


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


class CrashAfterPublish:
    """Publishes for real, then dies before the relay can mark the rows: the crash window of a relay."""

    def __init__(self, inner: JetStreamPublisher) -> None:
        self.inner = inner

    async def publish_all(self, events: Any) -> None:
        await self.inner.publish_all(events)
        raise ConnectionResetError("relay killed after publishing")


async def test_a_relay_killed_between_publish_and_marking_still_publishes_each_event_once(
    sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    jetstream = notes_stream
    ids = {(await write_note(sessions)).id for _ in range(3)}

    with pytest.raises(ConnectionResetError):
        await relay_for(
            sessions, CrashAfterPublish(JetStreamPublisher(jetstream)), subject_root
        ).publish_pending()
    restarted = relay_for(sessions, JetStreamPublisher(jetstream), subject_root)
    assert await restarted.pending_count() == 3  # nothing was marked: the crash came first
    assert await restarted.publish_pending() == 3  # re-sent...

    events = await notes_written(jetstream, subject_root, ids)
    assert sorted(e.meta.aggregate_id for e in events) == sorted(ids)  # ...but stored once each
    assert await restarted.pending_count() == 0


async def test_a_rolled_back_transaction_publishes_nothing(
    sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    jetstream = notes_stream
    note = Note.write(ORGANIZATION, "never", now=CLOCK.now())
    async with unit_of_work(sessions) as uow:
        uow.notes.add(note)
        uow.track(note)
        # leaving the block without commit() rolls back

    relay = relay_for(sessions, JetStreamPublisher(jetstream), subject_root)
    assert await relay.publish_pending() == 0
    assert await notes_written(jetstream, subject_root, {note.id}) == []
    async with unit_of_work(sessions) as uow:
        assert await uow.notes.get(ORGANIZATION, note.id) is None


async def test_the_relay_publishes_a_commit_as_soon_as_it_happens(
    sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    jetstream = notes_stream
    # The relay polls only every 30 s here: the commit's wake-up alone can publish within the timeout.
    relay = relay_for(sessions, JetStreamPublisher(jetstream), subject_root, idle_interval=30.0)
    await relay.publish_pending()  # connected already: the first pass of run() below takes a moment
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.2)  # that pass is over: the relay now sleeps until woken
        note = await write_note(sessions, relay)

        async def published() -> bool:
            return len(await notes_written(jetstream, subject_root, {note.id})) == 1

        await eventually(published, timeout=3)
    finally:
        stop.set()
        await task


async def test_flushed_returns_once_what_was_committed_is_on_the_stream(
    sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    jetstream = notes_stream
    # Polls every 30 s and is not woken by the commit: only `flushed` makes it publish now.
    relay = relay_for(sessions, JetStreamPublisher(jetstream), subject_root, idle_interval=30.0)
    await relay.publish_pending()
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.2)  # its first pass is over: it sleeps
        notes = [await write_note(sessions) for _ in range(3)]
        assert await relay.flushed(timeout=3)
        events = await notes_written(jetstream, subject_root, {note.id for note in notes})
        assert len(events) == 3
    finally:
        stop.set()
        await task


async def test_flushed_gives_up_after_its_timeout_when_no_relay_runs(
    sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    relay = relay_for(sessions, JetStreamPublisher(notes_stream), subject_root)
    await write_note(sessions)
    assert not await relay.flushed(timeout=0.2)


def decoded(msg: Any) -> NoteWrittenMessage:
    return note_written(envelope.decode(msg.headers[envelope.TYPE_HEADER], msg.data))


def as_message(event: NoteWrittenMessage) -> Message:
    assert isinstance(event, Message)
    return event


# --- consumers --------------------------------------------------------------------------------------------

applied = Table("test_applied_events", MetaData(), Column("event_id", String(36), primary_key=True))


class Recorder:
    """A handler whose effect is a row in the consumer's own database, plus a crash switch."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()  # by event id: the stream holds other tests' events too
        self.fail_once: set[str] = set()

    async def __call__(self, event: Any, uow: NotesUnitOfWork) -> None:
        self.calls[event.meta.event_id] += 1
        await uow.session.execute(insert(applied).values(event_id=event.meta.event_id))
        if event.meta.event_id in self.fail_once:
            self.fail_once.discard(event.meta.event_id)
            raise RuntimeError("consumer crashed mid-transaction")


async def applied_count(sessions: Sessions, event_ids: set[str]) -> int:
    async with sessions() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(applied).where(applied.c.event_id.in_(event_ids))
            )
            or 0
        )


@pytest.fixture
async def consumer_sessions(sessions: Sessions) -> Sessions:
    async with sessions() as session, session.begin():
        await session.run_sync(lambda s: applied.create(s.connection(), checkfirst=True))
    return sessions


def consumer_for(
    js: Any, subject_root: str, sessions: Sessions, handler: Recorder, *, durable: str, ack_wait: float = 30.0
) -> DurableConsumer:
    return DurableConsumer(
        service="test",
        js=js,
        subject_root=subject_root,
        context=CONTEXT,
        durable=durable,
        handlers={NoteWrittenProto: handler},
        uow_factory=lambda: unit_of_work(sessions),
        batch_size=10,
        fetch_timeout=0.3,
        redelivery=Redelivery(ack_wait=ack_wait, retry_delay=0.1),
    )


async def test_a_consumer_that_crashes_before_acking_gets_the_event_again_and_applies_it_once(
    consumer_sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    sessions, jetstream = consumer_sessions, notes_stream
    durable = f"crash-before-ack-{new_id()[-8:]}"
    note = await write_note(sessions)
    await relay_for(sessions, JetStreamPublisher(jetstream), subject_root).publish_pending()
    recorder = Recorder()
    consumer = consumer_for(jetstream, subject_root, sessions, recorder, durable=durable, ack_wait=1.0)

    # First delivery: the handler's transaction commits, then the process "dies" before acking.
    await consumer.start()
    ours = None
    while ours is None:  # the stream also holds other tests' events: ack those, keep ours un-acked
        for msg in await consumer._subscription.fetch(10, timeout=2):  # type: ignore[union-attr]
            if decoded(msg).meta.aggregate_id == note.id:
                ours = msg
            else:
                await msg.ack()
    assert await consumer._apply([consumer._decode(ours)]) is None  # applied and committed, never acked

    # After ack_wait JetStream redelivers; the inbox recognises it.
    event_id = decoded(ours).meta.event_id
    redelivered = 0
    for _ in range(20):
        redelivered += await consumer.process_batch()
        if redelivered:
            break
        await asyncio.sleep(0.2)
    assert redelivered >= 1
    assert await applied_count(sessions, {event_id}) == 1
    assert recorder.calls[event_id] == 1  # the duplicate never reached the handler


async def test_a_handler_failure_rolls_back_and_the_redelivery_applies_once(
    consumer_sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    sessions, jetstream = consumer_sessions, notes_stream
    note = await write_note(sessions)
    await relay_for(sessions, JetStreamPublisher(jetstream), subject_root).publish_pending()
    [event] = await notes_written(jetstream, subject_root, {note.id})
    recorder = Recorder()
    recorder.fail_once.add(event.meta.event_id)
    consumer = consumer_for(
        jetstream, subject_root, sessions, recorder, durable=f"fails-once-{new_id()[-8:]}"
    )

    async def applied_once() -> bool:
        await consumer.process_batch()
        return await applied_count(sessions, {event.meta.event_id}) == 1

    await eventually(applied_once, timeout=10)
    assert recorder.calls[event.meta.event_id] >= 2  # failed once, then applied


async def test_an_event_stored_twice_beyond_the_duplicate_window_is_applied_once(
    consumer_sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    """A relay that re-sends after JetStream forgot the id (window passed): the inbox is the second guard."""
    sessions, jetstream = consumer_sessions, notes_stream
    note = await write_note(sessions)
    await relay_for(sessions, JetStreamPublisher(jetstream), subject_root).publish_pending()
    [event] = await notes_written(jetstream, subject_root, {note.id})
    # Same event, different message id: JetStream stores it again, as it would after its window.
    await publish(jetstream, subject_root, as_message(event), message_id=event.meta.event_id + "-late")
    assert len(await notes_written(jetstream, subject_root, {note.id})) == 2
    recorder = Recorder()
    consumer = consumer_for(jetstream, subject_root, sessions, recorder, durable=f"late-dup-{new_id()[-8:]}")

    while await consumer.process_batch():
        pass

    assert await applied_count(sessions, {event.meta.event_id}) == 1
    assert recorder.calls[event.meta.event_id] == 1


async def test_a_batch_inbox_check_admits_each_new_event_once_and_only_if_the_transaction_commits(
    sessions: Sessions,
) -> None:
    consumer = f"batch-inbox-{new_id()[-8:]}"
    async with unit_of_work(sessions) as uow:
        assert await uow.first_times(consumer, ["seen"]) == {"seen"}
        await uow.commit()
    async with unit_of_work(sessions) as uow:
        assert await uow.first_times(consumer, ["lost"]) == {"lost"}
        # no commit: the inbox row goes with the rest of the transaction

    async with unit_of_work(sessions) as uow:
        fresh = await uow.first_times(consumer, ["seen", "new", "lost", "new"])
        assert await uow.first_times(consumer, []) == set()
        await uow.commit()

    assert fresh == {"new", "lost"}  # once each, though "new" came twice
    async with unit_of_work(sessions) as uow:  # another consumer keeps its own record
        assert await uow.first_times(f"other-{consumer}", ["seen"]) == {"seen"}


async def test_a_consumer_with_a_transaction_per_batch_applies_a_repeated_event_once(
    consumer_sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    sessions, jetstream = consumer_sessions, notes_stream
    notes = [await write_note(sessions) for _ in range(3)]
    await relay_for(sessions, JetStreamPublisher(jetstream), subject_root).publish_pending()
    events = await notes_written(jetstream, subject_root, {note.id for note in notes})
    repeated = events[0]  # stored twice, as after JetStream's duplicate window
    await publish(jetstream, subject_root, as_message(repeated), message_id=repeated.meta.event_id + "-again")
    recorder = Recorder()
    consumer = DurableConsumer(
        service="test",
        js=jetstream,
        subject_root=subject_root,
        context=CONTEXT,
        durable=f"per-batch-{new_id()[-8:]}",
        handlers={NoteWrittenProto: recorder},
        uow_factory=lambda: unit_of_work(sessions),
        batch_size=1000,
        fetch_timeout=0.3,
        transaction_per_batch=True,
        linger=0.1,
    )

    while await consumer.process_batch():
        pass

    ids = {event.meta.event_id for event in events}
    assert await applied_count(sessions, ids) == 3
    assert all(recorder.calls[event_id] == 1 for event_id in ids)


async def test_starting_brings_an_existing_durable_up_to_date_with_the_ack_wait_it_is_given(
    consumer_sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    """A durable made with the old settings (30 s ack wait, JetStream dropping after 50 deliveries) takes
    the new ones when the service starts again: its config is what JetStream redelivers by."""
    sessions, jetstream = consumer_sessions, notes_stream
    durable = f"updated-{new_id()[-8:]}"
    stream = envelope.stream_name(subject_root, CONTEXT)
    await jetstream.add_consumer(
        stream,
        config=ConsumerConfig(
            durable_name=durable,
            filter_subject=envelope.context_subjects(subject_root, CONTEXT),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=30.0,
            max_deliver=50,
            max_ack_pending=40,
        ),
    )

    await consumer_for(jetstream, subject_root, sessions, Recorder(), durable=durable, ack_wait=2.5).start()

    config = (await jetstream.consumer_info(stream, durable)).config
    assert config.ack_wait == 2.5
    assert config.max_deliver == -1  # the consumer parks what keeps failing; JetStream drops nothing
    await jetstream.delete_consumer(stream, durable)


# --- NATS outage ----------------------------------------------------------------------------------------


async def test_the_relay_catches_up_after_nats_was_stopped_and_started_again(
    sessions: Sessions, subject_root: str
) -> None:
    server = OwnNatsServer()
    await server.start()
    client = await connect_nats(server.url, name="relay-outage-test")
    try:
        js = client.jetstream()
        await ensure_streams(js, subject_root, (CONTEXT,))
        relay = relay_for(sessions, JetStreamPublisher(js, timeout=1.0), subject_root)
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))

        before = await write_note(sessions, relay)
        await eventually(lambda: _count(js, subject_root, {before.id}, 1), timeout=5)

        server.stop()
        during = [await write_note(sessions, relay) for _ in range(5)]  # committed while NATS is down
        await asyncio.sleep(1.0)
        assert await relay.pending_count() == 5

        await server.start()  # same store: the stream and its history come back
        ids = {i.id for i in during}
        await eventually(lambda: _count(js, subject_root, ids, 5), timeout=20)
        assert await relay.pending_count() == 0
        stop.set()
        await task
    finally:
        await client.close()
        server.remove()


async def _count(js: Any, subject_root: str, ids: set[str], expected: int) -> bool:
    try:
        return len(await notes_written(js, subject_root, ids)) == expected
    except Exception:
        return False


async def test_housekeeping_removes_only_rows_that_can_no_longer_matter(
    sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    clock = FakeClock(CLOCK.now())
    relay = relay_for(
        sessions, JetStreamPublisher(notes_stream), subject_root, inbox=messaging.inbox, clock=clock
    )
    await write_note(sessions)
    await relay.publish_pending()
    unpublished = Note.write(ORGANIZATION, "later", now=clock.now())
    async with unit_of_work(sessions, clock=clock) as uow:
        assert await uow.first_time("old-consumer", "old-event")
        await uow.commit()

    clock.advance(days=9)  # past the outbox retention (1 day) and the stream's max age (7 days)
    async with unit_of_work(sessions, clock=clock) as uow:
        assert await uow.first_time("new-consumer", "new-event")
        uow.notes.add(unpublished)
        uow.track(unpublished)
        await uow.commit()
    await relay.purge()

    async with sessions() as session:
        outbox_events: set[str] = set(await session.scalars(select(messaging.outbox.c.event_id)))
        inbox_events: set[str] = set(await session.scalars(select(messaging.inbox.c.event_id)))
    assert len(outbox_events) == 1  # only the unpublished row survives; the old published one is gone
    assert inbox_events == {"new-event"}
