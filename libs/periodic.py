"""The loop of every service's periodic pass (the Executor's reconciler and probes, Reputation's pruner,
evaluations and warm-up planner): run the pass, tell a store outage (logged once, ADR 0009) from a failure
worth a warning, never crash, and wait until the next pass or until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from libs.stores import StoreOutages

T = TypeVar("T")


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less when `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_periodically(
    stop: asyncio.Event,
    work: Callable[[], Awaitable[T]],
    *,
    every: float,
    name: str,
    outages: StoreOutages,
    log: logging.Logger,
    more_now: Callable[[T], bool] | None = None,
) -> None:
    """Run `work` every `every` seconds until `stop` is set. `more_now(result)` true (a pass that found a
    full batch) runs the next pass at once. A failed pass is logged as "<name> failed" unless it is an
    outage of one of the service's stores, which `outages` logs once."""
    while not stop.is_set():
        try:
            result = await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if outages.report(exc) is None:
                log.warning(f"{name} failed", extra={"error": type(exc).__name__})
        else:
            if more_now is not None and more_now(result):
                continue
        await pause(stop, every)


class PeriodicGauges:
    """A worker that sets gauges from the service's database every `every` seconds (queued intents, jobs
    per state, active pauses): `read` reads and sets them. A failed reading leaves the last values."""

    def __init__(
        self, name: str, read: Callable[[], Awaitable[None]], *, every: float, outages: StoreOutages
    ) -> None:
        self._name = name
        self._read = read
        self._every = every
        self._outages = outages

    async def run_once(self) -> None:
        await self._read()

    async def run(self, stop: asyncio.Event) -> None:
        await run_periodically(
            stop,
            self._read,
            every=self._every,
            name=self._name,
            outages=self._outages,
            log=logging.getLogger(__name__),
        )
