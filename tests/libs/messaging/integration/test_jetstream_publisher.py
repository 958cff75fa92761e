"""The relay's JetStream publisher against a real server: a pass's events are stored in order, repeats are
reported as duplicates, and a failed pass raises without leaving the client waiting for acks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NoStreamResponseError

from libs.messaging import envelope
from libs.messaging.publisher import JetStreamPublisher, OutgoingEvent
from libs.seedwork.ids import new_id


def events(subject: str, n: int) -> list[OutgoingEvent]:
    return [
        OutgoingEvent(subject, f"event {i}".encode(), {envelope.MSG_ID_HEADER: new_id()}) for i in range(n)
    ]


@pytest.fixture
async def stream(jetstream: Any, subject_root: str) -> AsyncIterator[str]:
    """A stream of this test's own (the services' streams are read whole by other tests' consumers);
    yields the subject prefix it captures."""
    name = envelope.stream_name(subject_root, "publisher_test")
    await jetstream.add_stream(name=name, subjects=[f"{subject_root}.publisher-test.>"])
    yield f"{subject_root}.publisher-test"
    await jetstream.delete_stream(name)


async def stored(js: Any, subject: str) -> list[bytes]:
    sub = await js.pull_subscribe(  # the stream is the one that captures `subject`
        subject,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    try:
        return [message.data for message in await sub.fetch(1000, timeout=1)]
    finally:
        await sub.unsubscribe()


async def test_a_pass_is_stored_in_order_and_a_repeat_is_reported_as_a_duplicate(jetstream, stream):
    subject = f"{stream}.{new_id()[-12:]}"
    batch = events(subject, 50)
    publisher = JetStreamPublisher(jetstream)

    assert await publisher.publish_all(batch) == [False] * 50
    assert await publisher.publish_all([batch[7], *events(subject, 1)]) == [True, False]

    assert await stored(jetstream, subject) == [
        *(e.payload for e in batch),
        b"event 0",  # the new one; the repeat of event 7 was not stored again
    ]


async def test_a_pass_with_an_event_no_stream_takes_raises_and_leaves_no_ack_pending(jetstream, stream):
    stored_subject = f"{stream}.{new_id()[-12:]}"
    nowhere = f"nostream-{new_id()[-12:]}.event"
    publisher = JetStreamPublisher(jetstream, timeout=2)

    with pytest.raises(NoStreamResponseError):
        # The refusal comes back while most of the others are still waiting for their acks.
        await publisher.publish_all([*events(nowhere, 1), *events(stored_subject, 500)])

    await asyncio.sleep(0)  # the client forgets a cancelled ack in the future's done callback
    assert jetstream.publish_async_pending() == 0  # nothing left holding the client's in-flight slots
