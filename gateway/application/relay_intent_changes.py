"""Relay one watcher's live intent changes from the feed to its socket, only as fast as the socket drains.

A reader takes changes from the feed into a small bounded queue; a writer hands them to the socket one at a
time. When the queue is full the reader stops reading, so the feed is read only as fast as the socket
takes frames, and the feed's own flow control pushes back on it in turn: nothing here grows with a slow
watcher. A socket that takes no frame for `stall_seconds` is cut off TOO_SLOW; so is one the feed gave up
on (it fell behind the feed's buffer). Every end names the last position the watcher was given (or the one
it started after), so it resumes with nothing lost and nothing twice. Each relay has its own reader, queue
and writer: a slow socket slows no other.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from gateway.application.ports import (
    ChangeFrame,
    FrameSink,
    IntentChangeFeed,
    WatchEnd,
    WatchEnded,
    WatcherLeft,
    WatchIntents,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelayEnded:
    """How a relay ended: why, the position to resume after (the last frame given, else the request's own
    after_position), and what the feed said (safe to show)."""

    end: WatchEnd
    resume_after: str
    detail: str = ""


@dataclass
class _Progress:
    position: str


class RelayIntentChanges:
    def __init__(self, feed: IntentChangeFeed, *, queue_frames: int, stall_seconds: float) -> None:
        self._feed = feed
        self._queue_frames = queue_frames
        self._stall_seconds = stall_seconds

    async def __call__(
        self, request: WatchIntents, sink: FrameSink, interrupted: asyncio.Future[WatchEnd]
    ) -> RelayEnded:
        """Relay until the feed ends, the socket stalls or leaves, or `interrupted` resolves (with
        GOING_AWAY or WATCHER_LEFT): whichever comes first ends the relay, and the feed's call with it."""
        queue: asyncio.Queue[ChangeFrame | WatchEnded] = asyncio.Queue(self._queue_frames)
        progress = _Progress(request.after_position)
        reader = asyncio.create_task(self._read(request, queue), name="realtime-read")
        writer = asyncio.create_task(self._write(sink, queue, progress), name="realtime-write")
        try:
            either: list[asyncio.Future[Any]] = [writer, interrupted]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
        if writer.done() and not writer.cancelled() and writer.exception() is None:
            end, detail = writer.result()
        else:
            end, detail = interrupted.result(), ""
        return RelayEnded(end, progress.position, detail)

    async def _read(self, request: WatchIntents, queue: asyncio.Queue[ChangeFrame | WatchEnded]) -> None:
        try:
            async for frame in self._feed.watch(request):
                await queue.put(frame)  # waits while the socket has not taken what is queued
            ended = WatchEnded(WatchEnd.ENDED)
        except WatchEnded as feed_ended:
            ended = feed_ended
        except Exception:
            log.exception("live intent changes: the feed failed")
            ended = WatchEnded(WatchEnd.INTERNAL)
        await queue.put(ended)  # after every frame read before it: those are still given

    async def _write(
        self, sink: FrameSink, queue: asyncio.Queue[ChangeFrame | WatchEnded], progress: _Progress
    ) -> tuple[WatchEnd, str]:
        while True:
            item = await queue.get()
            if isinstance(item, WatchEnded):
                return item.end, item.detail
            try:
                async with asyncio.timeout(self._stall_seconds):
                    await sink.send(item.text)
            except TimeoutError:
                return WatchEnd.TOO_SLOW, ""
            except WatcherLeft:
                return WatchEnd.WATCHER_LEFT, ""
            progress.position = item.position
