"""Background workers: the QUEUED scheduler, the projection refresher, the start-up rebuild."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from gate_service.application.release_due_intents import ReleaseDueIntentsHandler

log = logging.getLogger(__name__)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class QueuedIntentScheduler:
    """Re-decides due QUEUED intents; while a pass finds a full batch it goes on without waiting."""

    def __init__(self, release: ReleaseDueIntentsHandler, *, interval: float, batch_size: int) -> None:
        self._release = release
        self._interval = interval
        self._batch_size = batch_size

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                released = await self._release()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database or Redis away: try again later
                log.warning("scheduler pass failed", extra={"error": type(exc).__name__})
                await _pause(stop, self._interval * 4)
                continue
            if released < self._batch_size:
                await _pause(stop, self._interval)


class ProjectionRefresher:
    """Applies projection rows other replicas' consumers wrote (consumers are shared, memory is not)."""

    def __init__(
        self,
        load: Callable[[datetime | None], Awaitable[int]],
        now: Callable[[], datetime],
        *,
        interval: float,
    ) -> None:
        self._load = load
        self._now = now
        self._interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        since = self._now()
        while not stop.is_set():
            await _pause(stop, self._interval)
            started = self._now()
            try:
                await self._load(since)
                since = started
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("projection refresh failed", extra={"error": type(exc).__name__})


class StartupRebuild:
    """Rebuilds projections from the other services in the background, retrying until it succeeds, so the
    Gate serves at once (from its durable copy) even when those services are not up yet."""

    def __init__(
        self, name: str, rebuild: Callable[[], Awaitable[int]], *, max_backoff: float = 30.0
    ) -> None:
        self._name = name
        self._rebuild = rebuild
        self._max_backoff = max_backoff
        self.done = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                count = await self._rebuild()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "projection rebuild failed; retrying",
                    extra={"source": self._name, "error": type(exc).__name__},
                )
                await _pause(stop, backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            log.info("projection rebuilt", extra={"source": self._name, "items": count})
            self.done.set()
            break
        await stop.wait()  # the runtime treats a returning worker as a crash
