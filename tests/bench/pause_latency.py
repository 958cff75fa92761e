"""How fast a pause stops the sends: from PauseExecution returning to the last provider call of the paused
organization, over PAUSES pauses while a campaign is being sent.

    make bench BENCH=pause_latency

Ops, the Gate and the Executor run in this process (one event loop, as in the kill-switch's e2e test:
tests/kill_switch_path.py), on throw-away databases, streams and Redis keys, the Executor sending through
the provider simulator (20 ms a call, WORKERS x BATCH_SIZE calls at most in flight). A backlog of
BACKLOG intents is approved through the Gate first; then, PAUSES times: once the sends are flowing (FLOWING
more calls since the last resume), an ADMIN pauses the organization through ops' gRPC, the simulator's
ledger says when the last call of the organization arrived after the answer and how many did, and the
organization is resumed. One event loop for every service and the simulator is the slow case: separate
processes share no loop. Target: p99 <= 1 s, and never more calls after the answer than were in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator

from libs.db.migrations import upgrade
from libs.messaging.nats_connection import connect_nats
from libs.messaging.streams import delete_streams, ensure_streams
from tests.bench._support import NATS_URL, REDIS_URL, ROOT, fresh_database, sqlalchemy_url
from tests.kill_switch_path import calls_after, kill_switch_path
from tests.sending_path import percentile
from whatlead.ops.v1 import ops_pb2

PAUSES = int(os.environ.get("BENCH_PAUSES", "20"))
BACKLOG = int(os.environ.get("BENCH_PAUSE_BACKLOG", "3000"))
FLOWING = 40  # calls since the last resume before the next pause: the sends are in full flow
SETTLE_SECONDS = 1.0  # the calls in flight at a pause are answered well within this
TARGET_P99_SECONDS = 1.0
RUN = secrets.token_hex(3)
ORGANIZATION = ops_pb2.CONTROL_SCOPE_ORGANIZATION


@contextlib.asynccontextmanager
async def databases() -> AsyncIterator[dict[str, str]]:
    async with contextlib.AsyncExitStack() as stack:
        urls = {}
        for name in ("ops", "gate", "executor"):
            url = sqlalchemy_url(stack.enter_context(fresh_database(f"wl_bench_{RUN}_{name}")))
            upgrade(url, ROOT / f"{name}_service" / "migrations")
            urls[name] = url
        yield urls


async def main() -> None:
    from redis.asyncio import Redis

    root = f"bench{RUN}"
    redis_prefix = f"wl:bench:{RUN}:"
    nats = await connect_nats(NATS_URL, name="bench-pause-latency")
    js = nats.jetstream()
    await ensure_streams(js, root)
    try:
        async with (
            databases() as urls,
            kill_switch_path(
                js=js,
                nats_url=NATS_URL,
                redis_url=REDIS_URL,
                redis_prefix=redis_prefix,
                root=root,
                database_urls=urls,
            ) as path,
        ):
            started = time.monotonic()
            await path.submit(BACKLOG)
            print(f"{BACKLOG} intents approved in {time.monotonic() - started:.1f} s", flush=True)
            latencies: list[float] = []
            after: list[int] = []
            async with path.executor_running():
                for _ in range(PAUSES):
                    await path.wait_for_calls(len(path.entries()) + FLOWING)
                    paused = await path.pause(ORGANIZATION, "")
                    await asyncio.sleep(SETTLE_SECONDS)
                    late = calls_after(path.entries(), paused)
                    latencies.append(max((call.at - paused.returned_at for call in late), default=0.0))
                    after.append(len(late))
                    assert len(path.entries()) < BACKLOG, "the backlog ran out: raise BENCH_PAUSE_BACKLOG"
                    await path.resume(ORGANIZATION, "")
            report(latencies, after, path.bound)
    finally:
        await delete_streams(js, root)
        await nats.close()
        redis = Redis.from_url(REDIS_URL)
        async for key in redis.scan_iter(match=redis_prefix + "*", count=1000):
            await redis.delete(key)
        await redis.aclose()


def report(latencies: list[float], after: list[int], bound: int) -> None:
    p50, p99, worst = percentile(latencies, 0.5), percentile(latencies, 0.99), max(latencies)
    print(
        f"pause → last provider call of the organization, {len(latencies)} pauses while sending: "
        f"p50 {p50 * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms  max {worst * 1000:.0f} ms"
    )
    print(
        f"  target p99 <= {TARGET_P99_SECONDS:.0f} s: p99 is {p99 / TARGET_P99_SECONDS:.3f} of it "
        f"({'met' if p99 <= TARGET_P99_SECONDS else 'MISSED'})"
    )
    print(
        f"calls reaching the provider after PauseExecution returned: {after}\n"
        f"  max {max(after)}, p50 {percentile(after, 0.5):.0f}; in-flight bound (workers x batch) {bound}: "
        f"{'never exceeded' if max(after) <= bound else 'EXCEEDED'}"
    )
