"""WatchIntents fan-out: deliveries per second to 1, 100 and 1,000 watchers of one organization, and the
delay from an event's publication to its arrival, beside a bare grpc.aio server-streaming loop.

    .venv/bin/python -m tests.bench watch_fanout

Ours: `python -m ops_service` (its own database and stream root), the watchers calling WatchIntents with an
API key of the organization (authentication, scope, validation, the hub, per-watcher buffers, filters,
metrics). The bare loop (tests/bench/_bare_fanout.py): a grpc.aio server following the same subject with
an ordered consumer, encoding each response once and writing it to every stream from an unbounded queue.
The changes are IntentChanged events published to JetStream as ops' outbox relay publishes them, as fast as
the relay would (acks awaited in chunks); each carries its publication time. The watchers run in a process
of their own (tests/bench/_watch_clients.py), one HTTP/2 connection per 100 streams.

Per size, ours then the bare loop, a burst: deliveries per second = changes x watchers / (last arrival -
first publication), and CPU seconds of the server process per delivery. Then both paced for 5 s at half the
bare loop's burst deliveries per second: the delay (publication -> arrival, read by every tenth watcher),
p50 and p99, beside that event rate (a burst's own delays are queueing, printed too). Targets: ours/bare
>= 0.7 at every size; ours' cost per delivery at 1,000 watchers <= 1.2 x its cost at 100.

BENCH_WATCH_DELIVERIES (default 200,000 per measurement): changes per size = that / watchers (at least
BENCH_WATCH_MIN_CHANGES, 2,000). Every run uses its own database, stream root and key, and removes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from libs.db.migrations import upgrade
from libs.messaging import envelope
from libs.messaging.nats_connection import connect_nats
from libs.messaging.streams import delete_streams, ensure_streams
from libs.seedwork.ids import new_id
from libs.testing.jetstream import directory_key, intent_changed
from tests.bench._bare_fanout import METHOD as BARE_METHOD
from tests.bench._support import (
    NATS_URL,
    ROOT,
    free_port,
    fresh_database,
    process_tree_cpu_seconds,
    sqlalchemy_url,
)
from whatlead.events.v1 import ops_events_pb2
from whatlead.ops.v1 import ops_pb2

SIZES = (1, 100, 1000)
DELIVERIES = int(os.environ.get("BENCH_WATCH_DELIVERIES", "200000"))
MIN_CHANGES = int(os.environ.get("BENCH_WATCH_MIN_CHANGES", "2000"))
OURS_METHOD = "/whatlead.ops.v1.OpsService/WatchIntents"
CHUNK = 256  # the relay's batch
PACED_SECONDS = 5.0
PACED_SHARE = 0.5  # the paced run's deliveries per second, as a share of what the bare loop delivered


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "protos"), os.environ.get("PYTHONPATH", "")]),
    }


@contextlib.asynccontextmanager
async def ops_process(database_url: str, root: str) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    env = {
        **_env(),
        "OPS_DATABASE_URL": sqlalchemy_url(database_url),
        "OPS_NATS_URL": NATS_URL,
        "OPS_SUBJECT_ROOT": root,
        "OPS_GRPC_PORT": str(port),
        "OPS_METRICS_PORT": str(free_port()),
        "OPS_LOG_LEVEL": "WARNING",
        # A burst of a whole measurement must not cut anyone off: the bench measures throughput.
        "OPS_WATCH_BUFFER": "1000000",
    }
    process = subprocess.Popen([sys.executable, "-m", "ops_service"], env=env, cwd=ROOT)  # noqa: ASYNC220
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=60)
        yield f"127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)


@contextlib.asynccontextmanager
async def bare_process(root: str, subject: str) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bench._bare_fanout",
        str(port),
        NATS_URL,
        envelope.stream_name(root, "ops"),
        subject,
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        await asyncio.wait_for(process.stdout.readline(), 30)
        yield f"127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        await process.wait()


def change(org: str, summary: str) -> ops_events_pb2.IntentChanged:
    intent = new_id()
    return intent_changed(
        org,
        intent,
        ops_pb2.INTENT_CHANGE_KIND_SENT,
        instance_id=new_id(),
        summary=summary,
        event_id=new_id(),
        event_type="whatlead.events.v1.MessageSent",
        provider_message_id=f"true_5511988887777@c.us_{intent[-12:]}",
    )


async def publish(
    js: Any, root: str, events: list[ops_events_pb2.IntentChanged], *, rate: float | None = None
) -> None:
    """As the relay publishes: back to back, acks awaited a chunk at a time; or, given a `rate`, each
    event at its time (events per second)."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    for start in range(0, len(events), CHUNK):
        acks = []
        for number, event in enumerate(events[start : start + CHUNK], start):
            if rate is not None and (wait := began + number / rate - loop.time()) > 0:
                await asyncio.sleep(wait)
            if event.change.summary.startswith("t="):
                event.change.summary = f"t={time.time_ns()}"
            encoded = envelope.encode(event)
            acks.append(
                await js.publish_async(
                    envelope.full_subject(root, encoded.subject_suffix),
                    encoded.payload,
                    headers={
                        envelope.MSG_ID_HEADER: encoded.event_id,
                        envelope.TYPE_HEADER: encoded.type_name,
                    },
                )
            )
        await asyncio.gather(*acks)


@dataclass
class Measured:
    deliveries_per_second: float
    cpu_per_delivery_us: float
    p99_delay_ms: float
    p50_delay_ms: float
    events_per_second: float
    failed: int


async def measure(
    js: Any,
    root: str,
    address: str,
    pid: int,
    method: str,
    org: str,
    watchers: int,
    key: str,
    *,
    rate: float | None = None,
) -> Measured:
    """A burst (`rate` None: deliveries per second, cost) or a paced run of PACED_SECONDS (the delay at a
    rate the server keeps up with)."""
    changes = max(MIN_CHANGES, DELIVERIES // watchers) if rate is None else max(20, int(rate * PACED_SECONDS))
    clients = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bench._watch_clients",
        address,
        method,
        org,
        str(watchers),
        str(changes),
        key,
        cwd=ROOT,
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert clients.stdin is not None and clients.stdout is not None
    try:
        await asyncio.wait_for(clients.stdout.readline(), 120)  # opened
        for _ in range(600):
            await publish(js, root, [change(org, "warmup")])
            clients.stdin.write(b"warm?\n")
            await clients.stdin.drain()
            if json.loads(await clients.stdout.readline())["warm"] == watchers:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the watchers did not all open")
        await asyncio.sleep(0.5)  # late warm-ups delivered
        clients.stdin.write(b"go\n")
        await clients.stdin.drain()
        events = [change(org, "t=0") for _ in range(changes)]
        cpu_before = process_tree_cpu_seconds(pid)
        first = time.time()
        await publish(js, root, events, rate=rate)
        published = time.time()
        result = json.loads(await asyncio.wait_for(clients.stdout.readline(), 600))
        cpu = process_tree_cpu_seconds(pid) - cpu_before
    finally:
        with contextlib.suppress(ProcessLookupError):
            clients.terminate()
        await clients.wait()
    deliveries = changes * watchers
    return Measured(
        deliveries_per_second=deliveries / (result["last_arrival"] - first),
        cpu_per_delivery_us=cpu / deliveries * 1e6,
        p99_delay_ms=result["p99"] * 1000,
        p50_delay_ms=result["p50"] * 1000,
        events_per_second=changes / max(published - first, 1e-9),
        failed=result["failed"],
    )


def report(what: str, measured: Measured) -> None:
    print(
        f"  {what}: {measured.deliveries_per_second:,.0f} deliveries/s, "
        f"{measured.cpu_per_delivery_us:.1f} us CPU/delivery, delay p50 {measured.p50_delay_ms:.1f} / p99 "
        f"{measured.p99_delay_ms:.1f} ms at {measured.events_per_second:,.0f} events/s"
        + (f", {measured.failed} streams failed" if measured.failed else ""),
        flush=True,
    )


async def main() -> None:
    began = time.perf_counter()
    run = secrets.token_hex(4)
    root = f"benchwatch_{run}"
    org = new_id()
    nc = await connect_nats(NATS_URL, name="bench-watch")
    js = nc.jetstream()
    await ensure_streams(js, root)
    key = await directory_key(js, root, org)
    subject = envelope.full_subject(root, f"{envelope.subject_suffix(ops_events_pb2.IntentChanged)}.*")
    results: dict[tuple[str, int], Measured] = {}
    paced: dict[tuple[str, int], Measured] = {}
    try:
        with fresh_database(f"bench_watch_{run}") as url:
            await asyncio.to_thread(upgrade, sqlalchemy_url(url), ROOT / "ops_service" / "migrations")
            async with ops_process(url, root) as ours, bare_process(root, subject) as bare:
                for watchers in SIZES:
                    for name, (address, pid), method, credential in (
                        ("ours", ours, OURS_METHOD, key),
                        ("bare", bare, BARE_METHOD, ""),
                    ):
                        measured = await measure(js, root, address, pid, method, org, watchers, credential)
                        results[(name, watchers)] = measured
                        report(f"{name} x{watchers} burst", measured)
                    # The delay at one rate for both: half of what the bare loop delivered in its burst.
                    rate = PACED_SHARE * results[("bare", watchers)].deliveries_per_second / watchers
                    for name, (address, pid), method, credential in (
                        ("ours", ours, OURS_METHOD, key),
                        ("bare", bare, BARE_METHOD, ""),
                    ):
                        measured = await measure(
                            js, root, address, pid, method, org, watchers, credential, rate=rate
                        )
                        paced[(name, watchers)] = measured
                        report(f"{name} x{watchers} paced", measured)
    finally:
        with contextlib.suppress(Exception):
            await delete_streams(js, root)
        await nc.close()

    print("\nWatchIntents fan-out, a burst (deliveries = changes x watchers; CPU of the server process)")
    print(
        f"{'watchers':>8}{'ours/s':>12}{'bare/s':>12}{'ours/bare':>11}{'ours us/dl':>12}{'bare us/dl':>12}"
        f"{'events/s':>10}"
    )
    for watchers in SIZES:
        o, b = results[("ours", watchers)], results[("bare", watchers)]
        print(
            f"{watchers:>8}{o.deliveries_per_second:>12,.0f}{b.deliveries_per_second:>12,.0f}"
            f"{o.deliveries_per_second / b.deliveries_per_second:>11.2f}{o.cpu_per_delivery_us:>12.1f}"
            f"{b.cpu_per_delivery_us:>12.1f}{o.events_per_second:>10,.0f}"
        )
    print(f"\nDelay, publication -> arrival, paced at {PACED_SHARE:.0%} of the bare loop's burst rate (ms)")
    print(f"{'watchers':>8}{'events/s':>10}{'ours p50':>10}{'ours p99':>10}{'bare p50':>10}{'bare p99':>10}")
    for watchers in SIZES:
        o, b = paced[("ours", watchers)], paced[("bare", watchers)]
        print(
            f"{watchers:>8}{o.events_per_second:>10,.0f}{o.p50_delay_ms:>10.1f}{o.p99_delay_ms:>10.1f}"
            f"{b.p50_delay_ms:>10.1f}{b.p99_delay_ms:>10.1f}"
        )
    print("(a burst's delays are queueing: the last change of a burst waits for all before it)")
    cost = results[("ours", 1000)].cpu_per_delivery_us / results[("ours", 100)].cpu_per_delivery_us
    print(f"cost per delivery at 1,000 / at 100 watchers (ours): {cost:.2f}")
    print("(targets: ours/bare >= 0.70 at every size; cost at 1,000 / at 100 <= 1.20)")
    print(f"(bench took {time.perf_counter() - began:.0f} s)")
