"""The fan-out hub on a real JetStream stream: live watchers by key, and a watcher from an old position
caught up through its own ordered consumer, then handed to the hub without a gap or a repeat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from libs.messaging import envelope
from libs.messaging.fanout import Delivery, FanoutHub, PositionExpired, Watcher
from libs.messaging.ordered_source import JetStreamMessageSource


@pytest.fixture
async def stream(jetstream: Any, subject_root: str) -> AsyncIterator[tuple[str, str]]:
    """A stream of this test's own; yields its name and subject prefix."""
    name = envelope.stream_name(subject_root, "fanout_test")
    await jetstream.add_stream(name=name, subjects=[f"{subject_root}.fanout-test.>"])
    yield name, f"{subject_root}.fanout-test"
    await jetstream.delete_stream(name)


def hub_on(js: Any, name: str, prefix: str, *, ring_size: int) -> FanoutHub[str]:
    return FanoutHub(
        JetStreamMessageSource(js, stream=name, subject_filter=f"{prefix}.*"),
        key_of=lambda message: message.subject.rsplit(".", 1)[1],
        decode=lambda message: message.data.decode(),
        subject_of=lambda key: f"{prefix}.{key}",
        ring_size=ring_size,
    )


async def publish(js: Any, prefix: str, key: str, text: str) -> int:
    return int((await js.publish(f"{prefix}.{key}", text.encode())).seq)


async def read(watcher: Watcher[str], count: int) -> list[Delivery[str]]:
    got: list[Delivery[str]] = []
    while len(got) < count:
        got += await asyncio.wait_for(watcher.take(), 10)
    return got


async def test_watchers_by_key_live_and_from_an_old_position(jetstream: Any, stream: tuple[str, str]) -> None:
    name, prefix = stream
    before = [await publish(jetstream, prefix, "a", f"old{i}") for i in range(30)]
    hub = hub_on(jetstream, name, prefix, ring_size=5)
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    try:
        await asyncio.wait_for(hub.started(), 10)
        live = await hub.watch("a", after=None, capacity=1000)
        other = await hub.watch("b", after=None, capacity=1000)
        for i in range(20):
            await publish(jetstream, prefix, "a", f"new{i}")
            await publish(jetstream, prefix, "b", f"b{i}")
        assert [d.item for d in await read(live, 20)] == [f"new{i}" for i in range(20)]
        assert [d.item for d in await read(other, 20)] == [f"b{i}" for i in range(20)]

        # From a position before the hub's start: caught up from the stream, then live from the hub.
        behind = await hub.watch("a", after=before[9], capacity=1000)
        assert not hub.covers(before[9])
        await publish(jetstream, prefix, "a", "after")
        caught = [d.item async for d in hub.catch_up(behind)]
        rest = [d.item for d in await read(behind, 1 + 40 - len(caught))]
        expected = [f"old{i}" for i in range(10, 30)] + [f"new{i}" for i in range(20)] + ["after"]
        assert caught + rest == expected
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_a_position_the_stream_no_longer_has_is_expired(
    jetstream: Any, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    for i in range(10):
        await publish(jetstream, prefix, "a", f"m{i}")
    await jetstream.purge_stream(name, seq=6)  # keeps 6 and after
    hub = hub_on(jetstream, name, prefix, ring_size=5)
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    try:
        with pytest.raises(PositionExpired):
            await asyncio.wait_for(hub.watch("a", after=2, capacity=10), 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
