"""A message's path when the system is not busy: SubmitIntent paced through a Gate process (PostgreSQL +
Redis) and an Executor process (PostgreSQL, the provider simulator), as in production.

    .venv/bin/python -m tests.bench message_latency

1. Latency at LATENCY_RATE intents/s for LATENCY_SECONDS (after LATENCY_WARMUP_SECONDS at the same rate,
   not counted): submitted→SENT per intent (SENT is the job's executed_at), split into submitted→approved
   (the Gate's decided_at), approved→job created (the Gate's relay, JetStream, the Executor's consumer)
   and job created→SENT (the Executor's workers: claim, provider call, outcome commit).
   Target: submitted→SENT p99 at most LATENCY_TARGET_MS.
2. The Gate's cost at light load: SubmitIntent paced at CPU_RATE intents/s for CPU_SECONDS, and the Gate
   process's CPU (user + system, children included) over that window divided by the decisions made.
   Target: at most CPU_TARGET_MS per decision. The Executor's CPU per message sent in the same window is
   printed beside it, for reference, and so is the Gate's CPU with no traffic at all (IDLE_SECONDS before
   the first intent, in ms of CPU per second): at CPU_RATE intents/s every 10 ms/s of idle work (pollers,
   consumers' fetches, the scheduler) is 0.1 ms of the cost per decision.

Every run uses its own databases, streams and Redis keys and removes them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psycopg

from executor_service.infrastructure.tables import jobs
from libs.messaging.nats_connection import connect_nats
from libs.messaging.streams import delete_streams, ensure_streams
from libs.rpc.convert import from_timestamp
from tests.bench._support import (
    NATS_URL,
    SERVICE_TOKEN,
    Ledger,
    consumed,
    credential_channel,
    executor_process,
    fresh_database,
    gate_process,
    process_tree_cpu_seconds,
    register,
    simulator_process,
)
from whatlead.common.v1 import common_pb2
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc

LATENCY_RATE = 200  # intents per second
LATENCY_SECONDS = 10
LATENCY_WARMUP_SECONDS = 2  # sent at the same rate first, not counted: both processes warm up
LATENCY_TARGET_MS = 100.0  # submitted→SENT p99
CPU_RATE = 100  # intents per second
CPU_SECONDS = 10
CPU_TARGET_MS = 1.5  # the Gate's CPU per decision
IDLE_SECONDS = 5  # the Gate's CPU with no traffic is measured this long, before the first intent
EXECUTOR_WORKERS = 4  # the default
INSTANCES = 20
RUN = secrets.token_hex(3)


@dataclass
class Paced:
    """What one paced run saw: per approved intent, when it was submitted and decided (epoch s)."""

    submitted: dict[str, float] = field(default_factory=dict)
    decided: dict[str, float] = field(default_factory=dict)
    calls: int = 0  # every answered SubmitIntent, approved or not


async def pace(stub: Any, organization: str, *, rate: int, seconds: float, first: int) -> Paced:
    """Open loop: intent n leaves at start + n / rate, answered or not (nothing else runs in this
    process, so its loop adds no delay)."""
    paced = Paced()

    async def submit(n: int) -> None:
        began = time.time()
        response = await stub.SubmitIntent(
            gate_pb2.SubmitIntentRequest(
                organization_id=organization,
                idempotency_key=f"{RUN}-{n}",
                target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value=f"55119{n:08d}"),
                type=common_pb2.MESSAGE_TYPE_TEXT,
                purpose=common_pb2.PURPOSE_DISPATCH,
                payload=common_pb2.MessagePayload(text=common_pb2.TextPayload(text=f"bench message {n}")),
            ),
            timeout=30,
        )
        paced.calls += 1
        if response.intent.status == gate_pb2.INTENT_STATUS_APPROVED:
            paced.submitted[response.intent.id] = began
            decided = from_timestamp(response.intent.decided_at)
            assert decided is not None, "an approved intent has its decision time"
            paced.decided[response.intent.id] = decided.timestamp()

    calls = []
    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        calls.append(asyncio.create_task(submit(first + n)))
    await asyncio.gather(*calls)
    return paced


async def sent_jobs(url: str, total: int) -> dict[str, tuple[float, float]]:
    """When `total` jobs of the executor's database are SENT: intent → (created_at, executed_at), epoch s."""
    query = f"SELECT intent_id, created_at, executed_at FROM {jobs.name} WHERE status = 'SENT'"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        while True:
            rows = await (await connection.execute(query)).fetchall()
            if len(rows) >= total:
                return {intent: (created.timestamp(), sent.timestamp()) for intent, created, sent in rows}
            await asyncio.sleep(0.25)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def spread(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 0.5):6.1f} ms   p99 {percentile(values, 0.99):6.1f} ms   "
        f"max {max(values):6.1f} ms"
    )


@dataclass(frozen=True)
class LightLoad:
    latencies: dict[str, list[float]]  # milliseconds per stage, per counted intent
    gate_cpu_ms: float  # per decision at CPU_RATE
    gate_idle_cpu_ms: float  # per second without traffic
    executor_cpu_ms: float  # per message sent at CPU_RATE
    decisions: int


async def measure(js: Any, simulator_url: str) -> LightLoad:
    root = f"bench{RUN}lat"
    durable_prefix = f"bench-{RUN}"
    organization = f"bench-latency-{RUN}"
    await ensure_streams(js, root)
    try:
        with (
            fresh_database(f"wl_bench_{RUN}_gate_latency") as gate_url,
            fresh_database(f"wl_bench_{RUN}_executor_latency") as url,
        ):
            async with (
                gate_process(gate_url, root, f"wl:bench:{RUN}:", durable_prefix) as gate,
                executor_process(url, root, simulator_url, EXECUTOR_WORKERS) as executor_pid,
                credential_channel(f"127.0.0.1:{gate.port}", SERVICE_TOKEN) as channel,
            ):
                await register(js, root, organization, INSTANCES)
                await consumed(js, root, f"{durable_prefix}-reputation")
                stub = gate_pb2_grpc.GateServiceStub(channel)
                idle_before = process_tree_cpu_seconds(gate.pid)
                await asyncio.sleep(IDLE_SECONDS)
                gate_idle_cpu = process_tree_cpu_seconds(gate.pid) - idle_before

                warmup = await pace(
                    stub, organization, rate=LATENCY_RATE, seconds=LATENCY_WARMUP_SECONDS, first=0
                )
                counted = await pace(
                    stub, organization, rate=LATENCY_RATE, seconds=LATENCY_SECONDS, first=warmup.calls
                )
                expected = len(warmup.submitted) + len(counted.submitted)
                sent = await asyncio.wait_for(sent_jobs(url, expected), 60)

                gate_before = process_tree_cpu_seconds(gate.pid)
                executor_before = process_tree_cpu_seconds(executor_pid)
                light = await pace(
                    stub, organization, rate=CPU_RATE, seconds=CPU_SECONDS, first=warmup.calls + counted.calls
                )
                await asyncio.wait_for(sent_jobs(url, expected + len(light.submitted)), 60)
                gate_cpu = process_tree_cpu_seconds(gate.pid) - gate_before
                executor_cpu = process_tree_cpu_seconds(executor_pid) - executor_before
    finally:
        await delete_streams(js, root)
    ids = list(counted.submitted)
    return LightLoad(
        latencies={
            "submitted→SENT": [(sent[i][1] - counted.submitted[i]) * 1000 for i in ids],
            "submitted→approved": [(counted.decided[i] - counted.submitted[i]) * 1000 for i in ids],
            "approved→job created": [(sent[i][0] - counted.decided[i]) * 1000 for i in ids],
            "job created→SENT": [(sent[i][1] - sent[i][0]) * 1000 for i in ids],
        },
        gate_cpu_ms=gate_cpu / max(1, light.calls) * 1000,
        gate_idle_cpu_ms=gate_idle_cpu / IDLE_SECONDS * 1000,
        executor_cpu_ms=executor_cpu / max(1, len(light.submitted)) * 1000,
        decisions=light.calls,
    )


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


async def run() -> None:
    began = time.perf_counter()
    nats = await connect_nats(NATS_URL, name="bench-latency")
    http = aiohttp.ClientSession()
    try:
        async with simulator_process() as simulator_url:
            ledger = Ledger(simulator_url, http)
            await ledger.clear()
            result = await measure(nats.jetstream(), simulator_url)
            duplicates = (await ledger.summary())["duplicate_sends"]
    finally:
        await http.close()
        await nats.close()
    latencies = result.latencies
    print(
        "SubmitIntent (gRPC, Gate process on PostgreSQL + Redis) → SENT (Executor process, "
        f"{EXECUTOR_WORKERS} workers, simulator without latency), {os.cpu_count()} CPUs.\n"
        f"1. At {LATENCY_RATE} intents/s for {LATENCY_SECONDS} s after {LATENCY_WARMUP_SECONDS} s of warm-up "
        f"({len(latencies['submitted→SENT'])} approved intents, {duplicates} duplicate sends):"
    )
    for name, values in latencies.items():
        print(f"  {name:22} {spread(values)}")
    p99 = percentile(latencies["submitted→SENT"], 0.99)
    print(
        f"  submitted→SENT p99 {p99:.1f} ms, target <= {LATENCY_TARGET_MS:.0f} ms: "
        f"{verdict(p99 <= LATENCY_TARGET_MS)}"
    )
    print(
        f"2. At {CPU_RATE} intents/s for {CPU_SECONDS} s ({result.decisions} decisions): Gate server CPU "
        f"{result.gate_cpu_ms:.2f} ms per decision, target <= {CPU_TARGET_MS} ms: "
        f"{verdict(result.gate_cpu_ms <= CPU_TARGET_MS)}; Executor CPU {result.executor_cpu_ms:.2f} ms per "
        "message sent\n"
        f"   Gate idle (no traffic, {IDLE_SECONDS} s): {result.gate_idle_cpu_ms:.1f} ms CPU per second, "
        f"{result.gate_idle_cpu_ms / CPU_RATE:.2f} ms of each decision's cost at {CPU_RATE} intents/s"
    )
    print(f"(bench took {time.perf_counter() - began:.0f} s)")


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
