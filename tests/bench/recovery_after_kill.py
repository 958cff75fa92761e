"""How soon a message sent around a kill -9 of the Gate shows SENT, with the consumers' ack wait as it was
(30 s) and as it is (ADR 0030):

    .venv/bin/python -m tests.bench recovery_after_kill

Each run: INTENTS intents submitted at RATE a second through a Gate process (PostgreSQL + Redis) that is
killed with SIGKILL KILLS times mid-run and restarted at once, an Executor process sending to the provider
simulator, a client repeating each unanswered SubmitIntent with the same key. Measured per message sent
from a second before a kill until the restarted Gate serves: the simulator's time of the send → the
Gate's write of SENT. The MessageSent events the dead Gate had fetched come back only after the ack wait;
the others as soon as the Gate is back. Target: p99 at most TARGET_P99_SECONDS.

Every run uses its own databases, streams and Redis keys and removes them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from libs.config import ConsumingServiceSettings
from libs.db.migrations import upgrade
from libs.messaging.nats_connection import connect_nats
from libs.messaging.streams import delete_streams, ensure_streams
from tests.bench._support import NATS_URL, REDIS_URL, fresh_database, sqlalchemy_url
from tests.sending_path import FINAL, around, percentile, run_with_gate_kills

INTENTS = 600
KILLS = 3
RATE = 60  # intents a second
BASELINE_ACK_WAIT_SECONDS = 30.0  # every consumer's ack wait before ADR 0030
TARGET_P99_SECONDS = 5.0
DEFAULT_ACK_WAIT_SECONDS: float = ConsumingServiceSettings.model_fields["consumer_ack_wait_seconds"].default
ROOT = Path(__file__).resolve().parents[2]
RUN = secrets.token_hex(3)


@dataclass(frozen=True)
class Recovery:
    ack_wait: float
    delays: list[float]  # send→SENT seconds of the sends around the kills
    downtimes: list[float]  # seconds from each kill until the Gate served again
    final: Counter[str]
    duplicates: int


async def measure(js, ack_wait: float | None, label: str) -> Recovery:
    """One run with the Gate's consumers at `ack_wait` seconds (None: the service's default)."""
    root = f"bench{RUN}rk{label}"
    prefix = f"wl:bench:{RUN}:{label}:"
    await ensure_streams(js, root)
    settings = {} if ack_wait is None else {"consumer_ack_wait_seconds": str(ack_wait)}
    try:
        with (
            fresh_database(f"wl_bench_{RUN}_{label}_gate") as gate_url,
            fresh_database(f"wl_bench_{RUN}_{label}_executor") as executor_url,
        ):
            upgrade(sqlalchemy_url(gate_url), ROOT / "gate_service" / "migrations")
            upgrade(sqlalchemy_url(executor_url), ROOT / "executor_service" / "migrations")
            run = await run_with_gate_kills(
                js=js,
                root=root,
                gate_url=sqlalchemy_url(gate_url),
                executor_url=sqlalchemy_url(executor_url),
                nats_url=NATS_URL,
                redis_url=REDIS_URL,
                redis_prefix=prefix,
                organization=f"bench-recovery-{RUN}",
                intents=INTENTS,
                kills=KILLS,
                rate=RATE,
                gate_settings=settings,
            )
    finally:
        await delete_streams(js, root)
        await forget_keys(prefix)
    return Recovery(
        ack_wait=ack_wait if ack_wait is not None else DEFAULT_ACK_WAIT_SECONDS,
        delays=around(run.send_to_sent(), run.windows),
        downtimes=[end - start - 1.0 for start, end in run.windows],
        final=Counter(row.status for row in run.rows),
        duplicates=sum(count - 1 for count in run.duplicates.values()),
    )


async def forget_keys(prefix: str) -> None:
    """The run's Redis keys (rate windows), deleted; the shared Redis may be busy, so patiently."""
    redis = Redis.from_url(REDIS_URL, socket_timeout=30)
    try:
        keys = [key async for key in redis.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def line(result: Recovery) -> str:
    lost = INTENTS - sum(count for status, count in result.final.items() if status in FINAL)
    return (
        f"ack wait {result.ack_wait:4.1f} s: send→SENT p50 {percentile(result.delays, 0.5):5.2f} s   "
        f"p99 {percentile(result.delays, 0.99):5.2f} s   max {max(result.delays):5.2f} s   "
        f"({len(result.delays)} sends around the kills; Gate down "
        f"{', '.join(f'{d:.1f}' for d in result.downtimes)} s; "
        f"{result.duplicates} sent twice, {lost} unfinished)"
    )


async def run() -> None:
    began = time.perf_counter()
    nats = await connect_nats(NATS_URL, name="bench-recovery")
    try:
        js = nats.jetstream()
        before = await measure(js, BASELINE_ACK_WAIT_SECONDS, "before")
        now = await measure(js, None, "now")
    finally:
        await nats.close()
    print(
        f"kill -9 of the Gate x{KILLS} during {INTENTS} intents at {RATE}/s (Gate and Executor processes, "
        f"provider simulator), {os.cpu_count()} CPUs:"
    )
    print(f"  before  {line(before)}")
    print(f"  now     {line(now)}")
    p99_now, p99_before = percentile(now.delays, 0.99), percentile(before.delays, 0.99)
    verdict = "OK" if p99_now <= TARGET_P99_SECONDS else "MISSED"
    print(
        f"  p99 now / before: {p99_now / p99_before:.2f} ({p99_now:.2f} s vs {p99_before:.2f} s); "
        f"p50 now / before: {percentile(now.delays, 0.5) / percentile(before.delays, 0.5):.2f}; "
        f"target p99 <= {TARGET_P99_SECONDS:.0f} s: {verdict}"
    )
    print(f"(bench took {time.perf_counter() - began:.0f} s)")


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
