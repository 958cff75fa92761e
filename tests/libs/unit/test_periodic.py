"""The shared loop of periodic passes: a full batch runs again at once, a store outage is the outages'
to log, any other failure is one warning per failed pass, and nothing stops the loop but `stop`."""

from __future__ import annotations

import asyncio
import logging

import redis.exceptions

from libs.periodic import run_periodically
from libs.stores import Store, StoreKind, StoreOutages

log = logging.getLogger("tests.periodic")


class Passes:
    """A pass that answers from a script, then sets `stop` when the script is spent."""

    def __init__(self, stop: asyncio.Event, script: list[int | BaseException]) -> None:
        self.stop = stop
        self.script = list(script)
        self.started: list[float] = []

    async def __call__(self) -> int:
        self.started.append(asyncio.get_running_loop().time())
        step = self.script.pop(0)
        if not self.script:
            self.stop.set()
        if isinstance(step, BaseException):
            raise step
        return step


async def run(script: list[int | BaseException], outages: StoreOutages, *, every: float) -> Passes:
    stop = asyncio.Event()
    passes = Passes(stop, script)
    await asyncio.wait_for(
        run_periodically(
            stop, passes, every=every, name="test pass", outages=outages, log=log, more_now=lambda n: n >= 10
        ),
        timeout=5,
    )
    return passes


async def test_a_full_batch_runs_the_next_pass_at_once_and_a_short_one_waits():
    passes = await run([10, 10, 3, 0], StoreOutages("periodic-test"), every=0.2)
    gaps = [later - earlier for earlier, later in zip(passes.started, passes.started[1:], strict=False)]
    assert gaps[0] < 0.1 and gaps[1] < 0.1  # after each full batch
    assert gaps[2] >= 0.19  # after the short one


async def test_failures_never_stop_the_loop_and_a_bug_is_one_warning_per_pass(caplog):
    caplog.set_level(logging.WARNING)
    passes = await run(
        [RuntimeError("boom"), RuntimeError("boom"), 1], StoreOutages("periodic-test"), every=0.01
    )
    assert len(passes.started) == 3
    warnings = [r for r in caplog.records if r.getMessage() == "test pass failed"]
    assert len(warnings) == 2 and all(getattr(r, "error", None) == "RuntimeError" for r in warnings)


async def test_a_store_outage_is_left_to_the_outages_which_log_it_once(caplog):
    caplog.set_level(logging.WARNING)
    outages = StoreOutages("periodic-test", probe_interval=60)
    outages.add(Store(StoreKind.REDIS, holds="rate windows", probe=lambda: asyncio.sleep(0)))
    down = redis.exceptions.ConnectionError("Error 111 connecting")
    await run([down, down, down, 1], outages, every=0.01)
    assert not [r for r in caplog.records if r.getMessage() == "test pass failed"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "Redis unavailable: Error 111 connecting"
    ]
