"""The fan-out hub on a fake stream: each watcher gets its key's messages once and in order, live, from the
ring, or caught up from the stream; a watcher that stops reading is cut off without holding the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from libs.messaging.fanout import (
    Delivery,
    FanoutHub,
    PositionExpired,
    StreamMessage,
    Watcher,
    WatcherOverflowed,
)


class FakeMessageSource:
    """A stream in memory: `append` stores a message; `follow` hands them over as they come."""

    def __init__(self, *, first_sequence: int = 1) -> None:
        self.messages: list[StreamMessage] = []
        self._next = first_sequence
        self._first = first_sequence
        self._arrived = asyncio.Condition()
        self.replays: list[tuple[str, int, int]] = []

    async def append(self, key: str, text: str) -> int:
        sequence, self._next = self._next, self._next + 1
        self.messages.append(StreamMessage(sequence, f"feed.{key}", text.encode(), {}))
        async with self._arrived:
            self._arrived.notify_all()
        return sequence

    def forget_before(self, sequence: int) -> None:
        """The stream's limits removed what came before `sequence`."""
        self.messages = [m for m in self.messages if m.sequence >= sequence]
        self._first = sequence

    async def bounds(self) -> tuple[int, int]:
        return self._first, self._next - 1

    async def follow(self, start_sequence: int) -> AsyncIterator[StreamMessage]:
        position = start_sequence
        while True:
            ready = [m for m in self.messages if m.sequence >= position]
            for message in ready:
                yield message
                position = message.sequence + 1
            if not ready:
                async with self._arrived:
                    await self._arrived.wait()

    async def replay(
        self, subject: str, start_sequence: int, until_sequence: int
    ) -> AsyncIterator[StreamMessage]:
        self.replays.append((subject, start_sequence, until_sequence))
        for message in list(self.messages):
            if message.subject == subject and start_sequence <= message.sequence:
                yield message
                if message.sequence >= until_sequence:
                    return


def key_of(message: StreamMessage) -> str | None:
    return message.subject.removeprefix("feed.")


def decode(message: StreamMessage) -> str | None:
    text = message.data.decode()
    return None if text == "skip" else text


@pytest.fixture
async def source() -> FakeMessageSource:
    return FakeMessageSource()


@pytest.fixture
async def running(source: FakeMessageSource) -> AsyncIterator[FanoutHub[str]]:
    hub = running_hub(source, ring_size=50)
    async with _running(hub) as started:
        yield started


def running_hub(source: FakeMessageSource, *, ring_size: int) -> FanoutHub[str]:
    return FanoutHub(
        source, key_of=key_of, decode=decode, subject_of=lambda key: f"feed.{key}", ring_size=ring_size
    )


class _running:
    def __init__(self, hub: FanoutHub[str]) -> None:
        self.hub = hub
        self.stop = asyncio.Event()

    async def __aenter__(self) -> FanoutHub[str]:
        self.task = asyncio.create_task(self.hub.run(self.stop))
        await asyncio.wait_for(self.hub.started(), 5)
        return self.hub

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 5)


async def read(watcher: Watcher[str], count: int) -> list[Delivery[str]]:
    got: list[Delivery[str]] = []
    while len(got) < count:
        got += await asyncio.wait_for(watcher.take(), 5)
    return got


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def texts(deliveries: list[Delivery[str]]) -> list[str]:
    return [d.item for d in deliveries]


async def test_a_watcher_from_now_gets_its_keys_messages_in_order_and_nothing_from_before(
    source: FakeMessageSource,
) -> None:
    await source.append("a", "before")
    async with _running(running_hub(source, ring_size=10)) as hub:
        watcher = await hub.watch("a", after=None, capacity=10)
        for i in range(3):
            await source.append("a", f"a{i}")
            await source.append("b", f"b{i}")
        assert texts(await read(watcher, 3)) == ["a0", "a1", "a2"]


async def test_every_watcher_of_a_key_gets_every_message(
    running: FanoutHub[str], source: FakeMessageSource
) -> None:
    watchers = [await running.watch("a", after=None, capacity=100) for _ in range(20)]
    for i in range(50):
        await source.append("a", f"m{i}")
    expected = [f"m{i}" for i in range(50)]
    for watcher in watchers:
        assert texts(await read(watcher, 50)) == expected


async def test_a_message_the_caller_does_not_decode_reaches_no_watcher(
    running: FanoutHub[str], source: FakeMessageSource
) -> None:
    watcher = await running.watch("a", after=None, capacity=10)
    await source.append("a", "skip")
    await source.append("a", "kept")
    assert texts(await read(watcher, 1)) == ["kept"]


async def test_a_recent_position_is_served_from_the_ring_without_the_stream(
    running: FanoutHub[str], source: FakeMessageSource
) -> None:
    positions = [await source.append("a", f"m{i}") for i in range(10)]
    await settle()
    watcher = await running.watch("a", after=positions[4], capacity=100)
    assert running.covers(positions[4])
    assert [d.item async for d in running.catch_up(watcher)] == []
    await source.append("a", "live")
    assert texts(await read(watcher, 6)) == ["m5", "m6", "m7", "m8", "m9", "live"]
    assert source.replays == []


async def test_an_older_position_is_caught_up_from_the_stream_then_handed_to_the_hub_without_gap_or_repeat(
    source: FakeMessageSource,
) -> None:
    async with _running(running_hub(source, ring_size=5)) as hub:
        positions = [await source.append("a", f"m{i}") for i in range(20)]
        await settle()
        watcher = await hub.watch("a", after=positions[2], capacity=100)
        assert not hub.covers(positions[2])
        await source.append("a", "live")  # arrives while the watcher catches up
        caught = [d async for d in hub.catch_up(watcher)]
        assert texts(caught) == [f"m{i}" for i in range(3, 20)]
        assert texts(await read(watcher, 1)) == ["live"]
        assert source.replays == [("feed.a", positions[2] + 1, positions[-1])]


async def test_the_hub_covers_what_it_saw_from_its_start_until_the_ring_evicts_it(
    source: FakeMessageSource,
) -> None:
    await source.append("a", "old")
    async with _running(running_hub(source, ring_size=3)) as hub:
        assert hub.start_sequence == 2
        for i in range(5):
            await source.append("a", f"m{i}")
        await settle()
        # The ring holds the last 3 (sequences 4, 5, 6): from 4 on the hub saw everything.
        assert hub.start_sequence == 4
        assert hub.covers(3) and not hub.covers(2)


async def test_a_position_older_than_the_stream_is_expired(source: FakeMessageSource) -> None:
    for i in range(10):
        await source.append("a", f"m{i}")
    source.forget_before(6)
    async with _running(running_hub(source, ring_size=3)) as hub:
        with pytest.raises(PositionExpired) as expired:
            await hub.watch("a", after=3, capacity=10)
        assert expired.value.first_sequence == 6
        await hub.watch("a", after=5, capacity=10)  # what follows 5 is all still there


async def test_a_watcher_that_stops_reading_is_cut_off_with_its_last_position_and_the_others_go_on(
    running: FanoutHub[str], source: FakeMessageSource
) -> None:
    stuck = await running.watch("a", after=None, capacity=5)
    readers = [await running.watch("a", after=None, capacity=100) for _ in range(3)]
    first = await source.append("a", "m0")
    assert texts(await read(stuck, 1)) == ["m0"]
    for i in range(1, 40):
        await source.append("a", f"m{i}")
    await settle()
    with pytest.raises(WatcherOverflowed) as cut:
        await stuck.take()
    assert cut.value.last_sequence == first
    assert running.overflows == 1 and running.watchers == 3
    for reader in readers:
        assert texts(await read(reader, 40)) == [f"m{i}" for i in range(40)]


async def test_a_closed_watcher_leaves_the_hub(running: FanoutHub[str]) -> None:
    async with await running.watch("a", after=None, capacity=5):
        assert running.watchers == 1
    assert running.watchers == 0


def test_a_hub_needs_a_ring() -> None:
    with pytest.raises(ValueError):
        FanoutHub(FakeMessageSource(), key_of=key_of, decode=decode, subject_of=str, ring_size=0)


async def test_a_reader_stuck_elsewhere_hears_that_it_was_cut_off(
    running: FanoutHub[str], source: FakeMessageSource
) -> None:
    stuck = await running.watch("a", after=None, capacity=2)
    cut = asyncio.create_task(stuck.cut_off())
    last = await source.append("a", "m0")
    assert texts(await read(stuck, 1)) == ["m0"]
    for i in range(1, 5):
        await source.append("a", f"m{i}")
    assert (await asyncio.wait_for(cut, 5)).last_sequence == last
