"""A process-wide live fan-out hub: one ordered feed of a stream's subject filter, many watchers by key.

One JetStream ordered consumer per (process, subject filter) reads every message once; each message is
decoded once (by the caller's function) and offered to the watchers registered under its key (an
organization, an instance). Each watcher has its own bounded buffer: a watcher whose buffer is full is
marked overflowed and dropped from the hub; it never blocks the feed or slows the other watchers.

The hub keeps a bounded ring of the latest messages with their stream sequences, so a watcher can resume
from a recent position without touching the server. `start_sequence` is the sequence from which the hub
has seen every message of its filter: its first sequence at start, raised as the ring evicts. A position
older than that is caught up from the stream itself (`MessageSource.replay`, a per-watcher ordered
consumer filtered on the watcher's subject) and then handed over to the hub: every message comes once, in
stream order, none is skipped (the watcher tracks the last sequence it delivered and skips what is at or
below it).

                 ┌─ ring (recent, by sequence) ─ resume from a recent position
    source ─► hub ┼─ watcher key A: [buffer] ─► stream 1
                 └─ watcher key B: [buffer] ─► stream 2 ... (a full buffer: overflowed, cut off)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One message of the stream as a source hands it over."""

    sequence: int  # the stream sequence: positions grow, they are not contiguous under a filter
    subject: str
    data: bytes
    headers: Mapping[str, str]
    pending: int = 0  # messages of the feed's filter still to come after this one (catching up)


@dataclass(frozen=True, slots=True)
class Delivery(Generic[Item]):
    """A decoded message for a watcher, at its stream position."""

    sequence: int
    item: Item


class MessageSource(Protocol):
    """The stream behind a hub (JetStream in production, a list in unit tests)."""

    async def bounds(self) -> tuple[int, int]:
        """The stream's first and last sequences now (first > last when it is empty)."""
        ...

    def follow(self, start_sequence: int) -> AsyncIterator[StreamMessage]:
        """Every message of the hub's filter from `start_sequence` on, in order, without end."""
        ...

    def replay(self, subject: str, start_sequence: int, until_sequence: int) -> AsyncIterator[StreamMessage]:
        """The messages on `subject` from `start_sequence` on, in order, ending once one at or past
        `until_sequence` was given or none is left to read."""
        ...


class PositionExpired(Exception):
    """The position is older than the stream's first message: what followed it may be gone."""

    def __init__(self, position: int, first_sequence: int) -> None:
        super().__init__(f"position {position} is older than the stream's first message ({first_sequence})")
        self.position = position
        self.first_sequence = first_sequence


class WatcherOverflowed(Exception):
    """The watcher did not keep up: its buffer filled. `last_sequence` is the last position it delivered
    (0: none), where it can resume."""

    def __init__(self, last_sequence: int) -> None:
        super().__init__(f"the watcher fell behind; last position delivered {last_sequence}")
        self.last_sequence = last_sequence


class Watcher(Generic[Item]):
    """One watcher's view of the hub: an async iterator of deliveries in stream order, each once.

    Its buffer is filled by the hub (never waiting) and emptied by the reader; `take` hands over what is
    there at once, so a reader writes a burst in one go. Leave it with `close` (or `async with`)."""

    def __init__(self, hub: FanoutHub[Item], key: str, capacity: int, after: int) -> None:
        self._hub = hub
        self.key = key
        self.capacity = capacity
        self._buffer: deque[Delivery[Item]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self._cut = (
            asyncio.Event()
        )  # set with `overflowed`: a reader blocked elsewhere (a slow write) hears it
        self.closed = False
        self.last_sequence = after  # the last position handed to the reader; anything at or below is skipped
        # Behind what the hub covers: `catch_up` has read the stream up to this sequence, not joined yet.
        self.behind_until: int | None = None

    # --- the hub's side (never awaits) ---

    def offer(self, delivery: Delivery[Item]) -> bool:
        """Buffer a delivery; False (and overflowed) when the buffer is full."""
        if self.overflowed:
            return False
        if len(self._buffer) >= self.capacity:
            self.overflowed = True
            self._cut.set()
            self._wake()
            return False
        self._buffer.append(delivery)
        self._wake()
        return True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the reader's side ---

    async def take(self, most: int = 256) -> list[Delivery[Item]]:
        """The next deliveries (at least one, at most `most`), waiting for them; raises WatcherOverflowed
        once the buffer overflowed (what it held is not handed over: the reader resumes from its last
        position)."""
        while True:
            if self.overflowed:
                self._buffer.clear()
                raise WatcherOverflowed(self.last_sequence)
            taken: list[Delivery[Item]] = []
            while self._buffer and len(taken) < most:
                delivery = self._buffer.popleft()
                if delivery.sequence > self.last_sequence:
                    taken.append(delivery)
                    self.last_sequence = delivery.sequence
            if taken:
                return taken
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def cut_off(self) -> WatcherOverflowed:
        """Wait until the buffer overflows (a reader stuck on writing what it took still gets cut off);
        returns the error to end with."""
        await self._cut.wait()
        return WatcherOverflowed(self.last_sequence)

    def accept(self, delivery: Delivery[Item]) -> bool:
        """For a catch-up: whether `delivery` is new to this watcher (then it counts as delivered)."""
        if delivery.sequence <= self.last_sequence:
            return False
        self.last_sequence = delivery.sequence
        return True

    def __aiter__(self) -> AsyncIterator[Delivery[Item]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delivery[Item]]:
        while True:
            for delivery in await self.take():
                yield delivery

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._hub._remove(self)
            self._buffer.clear()

    async def __aenter__(self) -> Watcher[Item]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class FanoutHub(Generic[Item]):
    """Feeds the watchers of one subject filter from one ordered feed (see the module's docstring).

    `key_of(message)`: the watcher key a message is for (None: nobody's). `decode(message)`: the item the
    watchers get (None: skipped), once per message. `subject_of(key)`: the subject a key's messages are on,
    for catching up from the stream."""

    def __init__(
        self,
        source: MessageSource,
        *,
        key_of: Callable[[StreamMessage], str | None],
        decode: Callable[[StreamMessage], Item | None],
        subject_of: Callable[[str], str],
        ring_size: int = 10_000,
        retry_delay: float = 1.0,
    ) -> None:
        if ring_size < 1:
            raise ValueError("ring_size must be at least 1")
        self._source = source
        self._key_of = key_of
        self._decode = decode
        self._subject_of = subject_of
        self._ring: deque[tuple[str, Delivery[Item]]] = deque()
        self._ring_size = ring_size
        self._retry_delay = retry_delay
        self._watchers: dict[str, list[Watcher[Item]]] = {}
        self._started = asyncio.Event()
        self.start_sequence = 0  # every message from here on was seen (0: not started)
        self.last_sequence = 0  # the last sequence the feed reached
        self.overflows = 0  # watchers cut off since start

    @property
    def watchers(self) -> int:
        return sum(len(group) for group in self._watchers.values())

    async def started(self) -> None:
        """Wait until the hub follows the stream (its start position is known)."""
        await self._started.wait()

    # --- the feed ---

    async def run(self, stop: asyncio.Event) -> None:
        """A worker of the process: follows the stream until `stop`, from the stream's end at start, and
        after a failure from where it was (nothing seen twice, nothing skipped)."""
        while not stop.is_set():
            try:
                if not self._started.is_set():
                    _, last = await self._source.bounds()
                    self.start_sequence = self.last_sequence = last
                    self.start_sequence += 1
                    self._started.set()
                await _until(stop, self._follow())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away: the feed resumes after the last sequence it saw
                log.warning("fan-out feed failed; following again", extra={"error": type(exc).__name__})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._retry_delay)

    async def _follow(self) -> None:
        async for message in self._source.follow(self.last_sequence + 1):
            self.publish(message)

    def publish(self, message: StreamMessage) -> None:
        """Hand one message of the feed to the ring and its key's watchers (never awaits)."""
        if message.sequence <= self.last_sequence:
            return
        self.last_sequence = message.sequence
        key = self._key_of(message)
        if key is None:
            return
        item = self._decode(message)
        if item is None:
            return
        delivery = Delivery(message.sequence, item)
        self._ring.append((key, delivery))
        if len(self._ring) > self._ring_size:
            _, evicted = self._ring.popleft()
            self.start_sequence = evicted.sequence + 1
        group = self._watchers.get(key)
        if group:
            overflowed = [watcher for watcher in group if not watcher.offer(delivery)]
            for watcher in overflowed:
                self.overflows += 1
                self._remove(watcher)

    # --- watchers ---

    async def watch(self, key: str, *, after: int | None, capacity: int) -> Watcher[Item]:
        """A watcher of `key`'s messages after position `after` (None: from now on), buffering at most
        `capacity` of them. From a position the ring covers, it starts with the ring's messages; from an
        older one, it joins the hub once `catch_up` has read up to what the ring covers (the reader calls
        it first, whatever the position). Raises PositionExpired for a position older than the stream's
        first message."""
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        await self.started()
        watcher = Watcher(self, key, capacity, self.last_sequence if after is None else after)
        if after is not None and not self.covers(after):
            first, _ = await self._source.bounds()
            if after < first - 1:
                raise PositionExpired(after, first)
            if not self.covers(after):  # (the bounds were read meanwhile: the feed may have moved on)
                watcher.behind_until = after
                return watcher
        self._register(watcher, after)
        return watcher

    def _register(self, watcher: Watcher[Item], after: int | None) -> None:
        """Join the hub, first given the ring's messages after `after`. No await from reading the ring to
        joining: no message of the feed can fall between them."""
        if after is not None and after < self.last_sequence:
            for ring_key, delivery in self._ring:
                if ring_key == watcher.key and delivery.sequence > after and not watcher.offer(delivery):
                    break  # more than it can hold: it overflows at its first read, with its position
        self._watchers.setdefault(watcher.key, []).append(watcher)

    def covers(self, after: int) -> bool:
        """Whether the hub has seen every message after `after` (the ring serves it)."""
        return after >= self.start_sequence - 1

    async def catch_up(self, watcher: Watcher[Item]) -> AsyncIterator[Delivery[Item]]:
        """What `watcher` missed before the hub covers it (nothing for a watcher it covered): its key's
        messages after its position, read from the stream (rounds up to the feed's last sequence, while the
        feed moves on), decoded, each once; then it joins the hub from where the last round ended, served
        from the ring. Live messages are not buffered meanwhile: the watcher's buffer stays for a slow
        reader, not for the catch-up."""
        if watcher.behind_until is None:
            return
        subject = self._subject_of(watcher.key)
        while watcher.behind_until is not None:
            checked, until = watcher.behind_until, self.last_sequence
            async for message in self._source.replay(subject, checked + 1, until):
                item = self._decode(message)
                if item is None:
                    continue
                delivery = Delivery(message.sequence, item)
                if watcher.accept(delivery):
                    yield delivery
            # Everything of the key up to `until` was read: from there, the hub if its ring still has it
            # and what came meanwhile fits in the buffer; else another round.
            if self.covers(until) and self._waiting(watcher.key, until) < watcher.capacity:
                watcher.behind_until = None
                if not watcher.closed:
                    self._register(watcher, until)
            else:
                watcher.behind_until = until

    def _waiting(self, key: str, after: int) -> int:
        return sum(1 for ring_key, delivery in self._ring if ring_key == key and delivery.sequence > after)

    def _remove(self, watcher: Watcher[Item]) -> None:
        group = self._watchers.get(watcher.key)
        if group is None:
            return
        with contextlib.suppress(ValueError):
            group.remove(watcher)
        if not group:
            del self._watchers[watcher.key]


async def _until(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> None:
    """Run `work` until it ends or `stop` is set."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.done() and not task.cancelled() and (error := task.exception()) is not None:
        raise error
