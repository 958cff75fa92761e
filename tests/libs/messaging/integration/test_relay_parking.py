"""An outbox row JetStream refuses never holds back the rows behind it (ADR 0031): the others are published,
its attempts are counted, and after the relay's bound it is parked for review; an outage counts nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import pytest
from nats.errors import ConnectionClosedError
from nats.js.errors import NoStreamResponseError
from prometheus_client import REGISTRY
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.db.engine import create_engine, session_factory
from libs.messaging.publisher import JetStreamPublisher, OutgoingEvent
from libs.messaging.relay import OutboxRelay
from libs.seedwork.clock import SystemClock
from libs.seedwork.ids import new_id
from libs.testing.jetstream import stored_events
from tests.libs.notes import MIGRATIONS
from tests.libs.notes.contract import CONTEXT, SUBJECT, event_to_proto, note_written
from tests.libs.notes.domain import Note
from tests.libs.notes.tables import messaging
from tests.libs.notes.unit_of_work import NotesUnitOfWork

CLOCK = SystemClock()
MAX_PAYLOAD = 4096  # the publisher's limit here; in production the server's, from the connection
MAX_ATTEMPTS = 3
outbox = messaging.outbox
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(migrated_database: Any) -> AsyncIterator[Sessions]:
    engine = create_engine(migrated_database("notes", MIGRATIONS))
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def relay(sessions: Sessions, notes_stream: Any, subject_root: str) -> AsyncIterator[OutboxRelay]:
    relay = OutboxRelay(
        service="parking-test",
        sessions=sessions,
        outbox=outbox,
        publisher=JetStreamPublisher(notes_stream, timeout=2, max_payload=MAX_PAYLOAD),
        subject_root=subject_root,
        clock=CLOCK,
        max_attempts=MAX_ATTEMPTS,
    )
    yield relay
    await relay.close()


async def write_note(sessions: Sessions) -> Note:
    note = Note.write("org-parking", "hello", now=CLOCK.now())
    async with NotesUnitOfWork(sessions, tables=messaging, to_message=event_to_proto, clock=CLOCK) as uow:
        uow.notes.add(note)
        uow.track(note)
        await uow.commit()
    return note


async def write_row(sessions: Sessions, *, subject: str = SUBJECT, payload: bytes = b"x") -> int:
    """An outbox row as a buggy or hostile writer could leave it."""
    async with sessions() as session, session.begin():
        row = {"event_id": new_id(), "subject": subject, "type_name": "t", "payload": payload}
        statement = insert(outbox).values(created_at=CLOCK.now(), **row).returning(outbox.c.position)
        return int((await session.execute(statement)).scalar_one())


async def rows(sessions: Sessions, positions: Iterable[int]) -> dict[int, Any]:
    async with sessions() as session:
        found = await session.execute(select(outbox).where(outbox.c.position.in_(list(positions))))
        return {row.position: row for row in found}


async def published_notes(js: Any, subject_root: str, notes: list[Note]) -> list[str]:
    wanted = {note.id for note in notes}
    stored = await stored_events(js, subject_root, CONTEXT, subject_suffix=SUBJECT, wait=0.3)
    return [e.meta.aggregate_id for e in map(note_written, stored) if e.meta.aggregate_id in wanted]


def parked_total() -> float:
    return REGISTRY.get_sample_value("whatlead_outbox_parked_total", {"service": "parking-test"}) or 0.0


async def test_refused_rows_let_the_others_through_and_are_parked_after_the_bound(
    sessions, relay, notes_stream, subject_root, caplog
):
    notes = [await write_note(sessions)]
    too_large = await write_row(sessions, payload=b"x" * (MAX_PAYLOAD + 1))
    notes.append(await write_note(sessions))
    no_stream = await write_row(sessions, subject=f"nostream{new_id()[-8:]}.event")
    notes.append(await write_note(sessions))
    parked_before = parked_total()

    with caplog.at_level(logging.WARNING, logger="libs.messaging.relay"):
        assert await relay.publish_pending() == 3  # the notes, though rows before them were refused
        for _ in range(MAX_ATTEMPTS - 1):  # later passes, each with new events behind the refused rows
            notes.append(await write_note(sessions))
            assert await relay.publish_pending() == 1

    assert sorted(await published_notes(notes_stream, subject_root, notes)) == sorted(n.id for n in notes)
    refused = await rows(sessions, [too_large, no_stream])
    assert [refused[p].publish_attempts for p in (too_large, no_stream)] == [MAX_ATTEMPTS] * 2
    assert [refused[p].last_error for p in (too_large, no_stream)] == [
        "MaxPayloadError",
        "NoStreamResponseError",
    ]
    assert all(row.parked_at is not None and row.published_at is None for row in refused.values())
    assert parked_total() - parked_before == 2
    parked_lines = [r for r in caplog.records if "parked" in r.getMessage()]
    assert len(parked_lines) == 2 and all(r.levelno == logging.WARNING for r in parked_lines)
    # Parked rows are not tried again, nor counted as pending.
    assert await relay.publish_pending() == 0
    assert await relay.pending_count() == 0


async def test_a_refusal_nothing_shows_to_be_the_rows_counts_nothing(sessions, relay):
    """Alone in its pass, a subject no stream takes looks like JetStream not being ready: the pass fails
    (and backs off) as in an outage, and no attempt is counted."""
    lonely = await write_row(sessions, subject=f"nostream{new_id()[-8:]}.event")

    for _ in range(MAX_ATTEMPTS + 1):
        with pytest.raises(NoStreamResponseError):
            await relay.publish_pending()

    row = (await rows(sessions, [lonely]))[lonely]
    assert row.publish_attempts == 0 and row.parked_at is None


class DownPublisher:
    """NATS away: every publication fails on the connection."""

    async def publish_all(self, events: Sequence[OutgoingEvent]) -> list[bool]:
        raise ConnectionClosedError


async def test_an_outage_fails_the_pass_and_parks_nothing(sessions, subject_root):
    notes = [await write_note(sessions) for _ in range(3)]
    relay = OutboxRelay(
        service="parking-test",
        sessions=sessions,
        outbox=outbox,
        publisher=DownPublisher(),
        subject_root=subject_root,
        clock=CLOCK,
        max_attempts=1,
    )
    try:
        for _ in range(3):
            with pytest.raises(ConnectionClosedError):
                await relay.publish_pending()
        assert await relay.pending_count() == len(notes)
    finally:
        await relay.close()
    async with sessions() as session:
        attempts = set((await session.execute(select(outbox.c.publish_attempts, outbox.c.parked_at))).all())
    assert attempts == {(0, None)}
