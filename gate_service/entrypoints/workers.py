"""Background workers: the QUEUED scheduler, the projection refresher, the start-up rebuild."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from gate_service.application.decide_awaiting_intents import DecideAwaitingIntents
from gate_service.application.release_due_intents import ReleaseDueIntents
from libs.periodic import pause
from libs.stores import StoreOutages

log = logging.getLogger(__name__)


class QueuedIntentScheduler:
    """Re-decides due QUEUED intents; while a pass finds a full batch it goes on without waiting. Told that
    an instance arrived (InstanceArrivals), it first re-decides that organization's intents waiting for one,
    at once rather than at its next pass."""

    def __init__(
        self,
        release_due: Callable[[ReleaseDueIntents], Awaitable[int]],
        decide_awaiting: Callable[[DecideAwaitingIntents], Awaitable[int]],
        *,
        interval: float,
        batch_size: int,
        outages: StoreOutages | None = None,
    ) -> None:
        self._release_due = release_due
        self._outages = outages or StoreOutages("gate")
        self._decide_awaiting = decide_awaiting
        self._interval = interval
        self._batch_size = batch_size
        self._arrivals: set[str] = set()
        self._again: set[str] = set()
        self._wake = asyncio.Event()

    def arrived(self, organization_id: str) -> None:
        self._arrivals.add(organization_id)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                busy = await self._pass()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database or Redis away: try again later
                if self._outages.report(exc) is None:  # an outage is logged once, not once a pass
                    log.warning("scheduler pass failed", extra={"error": type(exc).__name__})
                await pause(stop, self._interval * 4)
                continue
            if not busy:
                await self._sleep(stop)

    async def _pass(self) -> bool:
        """One pass; True when there is more to do right away."""
        self._wake.clear()
        # A fresh arrival is looked at again on the next pass too: an intent decided just before the
        # instance arrived may still have been on its way to the database at the first look.
        arrivals, self._arrivals = self._arrivals, set()
        organizations, self._again = arrivals | self._again, arrivals
        for organization_id in organizations:
            command = DecideAwaitingIntents(organization_id, self._batch_size)
            if await self._decide_awaiting(command) >= self._batch_size:
                self._arrivals.add(organization_id)  # more of them: the next pass goes on
        released = await self._release_due(ReleaseDueIntents(self._batch_size))
        return released >= self._batch_size or bool(self._arrivals)

    async def _sleep(self, stop: asyncio.Event) -> None:
        """Until the interval has passed, an instance arrived or the service stops."""
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=self._interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()


class ProjectionRefresher:
    """Applies projection rows other replicas' consumers wrote (consumers are shared, memory is not)."""

    def __init__(
        self,
        load: Callable[[datetime | None], Awaitable[int]],
        now: Callable[[], datetime],
        *,
        interval: float,
        outages: StoreOutages | None = None,
    ) -> None:
        self._load = load
        self._now = now
        self._interval = interval
        self._outages = outages or StoreOutages("gate")

    async def run(self, stop: asyncio.Event) -> None:
        since = self._now()
        while not stop.is_set():
            await pause(stop, self._interval)
            started = self._now()
            try:
                await self._load(since)
                since = started
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._outages.report(exc) is None:
                    log.warning("projection refresh failed", extra={"error": type(exc).__name__})


class StartupRebuild:
    """Rebuilds projections from the other services in the background, retrying until it succeeds, so the
    Gate serves at once (from its durable copy) even when those services are not up yet."""

    def __init__(
        self,
        name: str,
        rebuild: Callable[[], Awaitable[int]],
        *,
        max_backoff: float = 30.0,
        outages: StoreOutages | None = None,
    ) -> None:
        self._name = name
        self._rebuild = rebuild
        self._max_backoff = max_backoff
        self._outages = outages or StoreOutages("gate")
        self.done = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                count = await self._rebuild()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._outages.report(exc) is None:  # the source away is no store outage: logged here
                    log.warning(
                        "projection rebuild failed; retrying",
                        extra={"source": self._name, "error": type(exc).__name__},
                    )
                await pause(stop, backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            log.info("projection rebuilt", extra={"source": self._name, "items": count})
            self.done.set()
            break
        await stop.wait()  # the runtime treats a returning worker as a crash
