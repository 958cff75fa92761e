"""A trace survives the outbox: the row keeps the context of the span that wrote it, so whichever relay
publishes it, however much later (the writer's process gone meanwhile), publishes in that trace and puts
the publication's context in the NATS headers. The tests' notes context writes the rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import select

from libs import tracing
from libs.messaging import envelope
from libs.messaging.publisher import JetStreamPublisher
from libs.messaging.streams import delete_streams, ensure_streams
from tests.libs.messaging.integration.test_outbox_relay_consumer import (
    Sessions,
    relay_for,
    write_note,
)
from tests.libs.messaging.integration.test_outbox_relay_consumer import (
    sessions as sessions,  # the notes database, its relays closed after the test
)
from tests.libs.notes.contract import CONTEXT, SUBJECT
from tests.libs.notes.tables import messaging


@pytest.fixture
async def notes_stream(jetstream: Any, subject_root: str) -> AsyncIterator[Any]:
    await ensure_streams(jetstream, subject_root, (CONTEXT,))
    yield jetstream
    await delete_streams(jetstream, subject_root, (CONTEXT,))


async def test_a_row_written_before_a_crash_is_published_later_by_another_relay_in_its_trace(
    spans: InMemorySpanExporter, sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    with tracing.span("write note") as writer:
        assert writer is not None
        note = await write_note(sessions)  # committed; no relay of this "process" published it
    writing = writer.get_span_context()
    async with sessions() as session:
        event_id, stored = (
            await session.execute(select(messaging.outbox.c.event_id, messaging.outbox.c.trace_context))
        ).one()
    assert isinstance(stored, str) and f"{writing.trace_id:032x}" in stored

    # Another relay (its own connection, nothing in memory from the writer) publishes the row.
    assert await relay_for(sessions, JetStreamPublisher(notes_stream), subject_root).publish_pending() == 1

    [published] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert published.name == "publish NoteWritten"
    assert published.parent is not None
    assert (published.parent.trace_id, published.parent.span_id) == (writing.trace_id, writing.span_id)
    message = await notes_stream.get_last_msg(
        envelope.stream_name(subject_root, CONTEXT), envelope.full_subject(subject_root, SUBJECT)
    )
    carried = trace.get_current_span(tracing.extract(message.headers)).get_span_context()
    assert (carried.trace_id, carried.span_id) == (published.context.trace_id, published.context.span_id)
    assert message.headers[envelope.MSG_ID_HEADER] == event_id
    assert note.id in message.data.decode(errors="replace")


async def test_with_tracing_off_rows_store_no_context_and_messages_carry_none(
    sessions: Sessions, notes_stream: Any, subject_root: str
) -> None:
    assert not tracing.enabled()
    await write_note(sessions)
    async with sessions() as session:
        contexts: list[str | None] = list(await session.scalars(select(messaging.outbox.c.trace_context)))
    assert contexts == [None]

    assert await relay_for(sessions, JetStreamPublisher(notes_stream), subject_root).publish_pending() == 1
    message = await notes_stream.get_last_msg(
        envelope.stream_name(subject_root, CONTEXT), envelope.full_subject(subject_root, SUBJECT)
    )
    assert "traceparent" not in message.headers
