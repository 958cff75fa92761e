"""The Gate's background loops while a store is away: the outage is logged once, not once per pass."""

from __future__ import annotations

import asyncio
import logging

import redis.exceptions

from gate_service.application.decide_awaiting_intents import DecideAwaitingIntents
from gate_service.application.release_due_intents import ReleaseDueIntents
from gate_service.entrypoints.workers import QueuedIntentScheduler
from libs.stores import Store, StoreKind, StoreOutages
from libs.testing.waiting import eventually


class FailingPasses:
    """A use case failing every call with `error`, counting the calls."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def __call__(self, command: ReleaseDueIntents | DecideAwaitingIntents) -> int:
        self.calls += 1
        raise self.error


async def never_answers() -> None:
    raise redis.exceptions.ConnectionError("still refused")


async def scheduler_passes(error: Exception, passes: int) -> None:
    outages = StoreOutages("gate-test")
    outages.add(Store(StoreKind.REDIS, holds="rate windows", probe=never_answers))
    release_due = FailingPasses(error)
    scheduler = QueuedIntentScheduler(
        release_due, FailingPasses(error), interval=0.001, batch_size=10, outages=outages
    )
    stop = asyncio.Event()
    running = asyncio.create_task(scheduler.run(stop))

    async def enough() -> bool:
        return release_due.calls >= passes

    await eventually(enough)
    stop.set()
    await running


async def test_a_redis_outage_is_logged_once_however_many_scheduler_passes_fail(caplog):
    await scheduler_passes(redis.exceptions.ConnectionError("Error 111 connecting"), passes=20)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "Redis unavailable: Error 111 connecting"
    ]


async def test_any_other_failure_is_still_logged_at_each_pass(caplog):
    await scheduler_passes(ValueError("a bug"), passes=3)
    failures = [r for r in caplog.records if r.getMessage() == "scheduler pass failed"]
    assert len(failures) >= 3
