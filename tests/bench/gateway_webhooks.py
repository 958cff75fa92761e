"""Signed WAHA message-ack webhooks accepted per second (verified, normalized, acknowledged by JetStream,
answered 2xx) at 64 concurrent posts, beside a bare Starlette handler on the same server stack (uvicorn,
httptools, uvloop) that only awaits the same JetStream publish, in the same run; and the bare handler on
asyncio's loop and h11, the stack the gateway did not choose (ADR 0040).

Targets: the gateway >= 0.7x the bare handler; webhooks spread over 10,000 instances cost what they cost
over 10 (each secret is derived per webhook, none is stored). Every server is its own process
(`python -m tests.bench._gateway_server`), on the machine's NATS under a subject root of its own, removed
at the end; the load comes from this process, so both share the box's cores, and the server's CPU per
webhook is given beside the rate. Each webhook is new (its own event and message ids): none is a duplicate.

Until production wires the providers' normalizer (gateway.bootstrap.webhook_adapters), the gateway is
measured with the real verifier and the tests' fake normalizer (JSON parsed into one event); the output
says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import nats

from libs.messaging.streams import delete_streams, ensure_streams
from libs.webhooks import webhook_secret
from tests.bench._support import NATS_URL, ROOT, free_port, process_cpu

CONCURRENCY = 64
WARMUP_SECONDS = 1.5
MEASURE_SECONDS = float(os.environ.get("WHATLEAD_BENCH_SECONDS", "6"))
MASTER_KEY = secrets.token_hex(32)


@dataclass
class Result:
    name: str
    accepted: int
    refused: int
    seconds: float
    latencies: list[float]
    server_cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds

    def percentile(self, q: float) -> float:
        return statistics.quantiles(self.latencies, n=100)[int(q) - 1] * 1000 if self.latencies else 0.0

    @property
    def cpu_us(self) -> float:
        return self.server_cpu_seconds / max(1, self.accepted + self.refused) * 1e6


def waha_ack(n: int, session: str) -> bytes:
    """A WAHA message.ack (READ) as WAHA posts it, unique by its event and message ids."""
    message_id = f"true_5511987650000@c.us_3EB0{n:016X}"
    return json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "timestamp": int(time.time() * 1000),
            "event": "message.ack",
            "session": session,
            "metadata": {},
            "me": {"id": "5511912340000@c.us", "pushName": "Bench"},
            "payload": {
                "id": message_id,
                "from": "5511987650000@c.us",
                "to": "5511912340000@c.us",
                "participant": None,
                "fromMe": True,
                "ack": 3,
                "ackName": "READ",
            },
            "engine": "GOWS",
            "environment": {"version": "2026.8.1", "engine": "GOWS", "tier": "PLUS", "browser": None},
        }
    ).encode()


def fake_shaped(n: int) -> bytes:
    return json.dumps({"events": [{"kind": "MESSAGE_READ", "message_id": f"bench-{n}"}]}).encode()


def requests(instances: int, count: int, *, fakes: bool) -> Iterator[tuple[str, bytes, dict[str, str]]]:
    """`count` signed webhooks spread round-robin over `instances` instances."""
    ids = [str(uuid.uuid4()) for _ in range(instances)]
    keys = [webhook_secret(MASTER_KEY.encode(), instance_id).encode() for instance_id in ids]
    for n in range(count):
        slot = n % instances
        body = fake_shaped(n) if fakes else waha_ack(n, f"s{slot}")
        signature = hmac.new(keys[slot], body, hashlib.sha512).hexdigest()
        headers = {
            "content-type": "application/json",
            "x-webhook-hmac": signature,
            "x-webhook-hmac-algorithm": "sha512",
        }
        yield f"/webhooks/waha/{ids[slot]}", body, headers


@contextlib.asynccontextmanager
async def server(mode: str, root: str) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "protos"), os.environ.get("PYTHONPATH", "")]),
        "GATEWAY_NATS_URL": NATS_URL,
        "GATEWAY_SUBJECT_ROOT": root,
        "GATEWAY_HTTP_PORT": str(port),
        "GATEWAY_WEBHOOK_MASTER_KEY": MASTER_KEY,
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "tests.bench._gateway_server", mode]
    process = subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: ASYNC220 - a server, not waited on
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                assert process.poll() is None, f"{mode} server exited"
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.post(url + "/webhooks/waha/x", data=b"{}") as response:
                        await response.read()
                        break
                await asyncio.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


async def load(name: str, url: str, pid: int, work: list[tuple[str, bytes, dict[str, str]]]) -> Result:
    """64 posters over keep-alive connections: a warm-up, then MEASURE_SECONDS counted."""
    position = 0
    accepted = refused = 0
    latencies: list[float] = []
    measuring = False
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def poster(deadline: float) -> None:
            nonlocal position, accepted, refused
            while time.perf_counter() < deadline:
                path, body, headers = work[position % len(work)]
                position += 1
                started = time.perf_counter()
                async with session.post(url + path, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
                if measuring:
                    latencies.append(time.perf_counter() - started)
                    accepted += ok
                    refused += not ok

        await asyncio.gather(*(poster(time.perf_counter() + WARMUP_SECONDS) for _ in range(CONCURRENCY)))
        measuring = True
        cpu_before = process_cpu(pid)[1]
        started = time.perf_counter()
        await asyncio.gather(*(poster(started + MEASURE_SECONDS) for _ in range(CONCURRENCY)))
        seconds = time.perf_counter() - started
        cpu = process_cpu(pid)[1] - cpu_before
    return Result(name, accepted, refused, seconds, latencies, cpu)


def merged(rounds: list[Result]) -> Result:
    return Result(
        rounds[0].name,
        sum(r.accepted for r in rounds),
        sum(r.refused for r in rounds),
        sum(r.seconds for r in rounds),
        [latency for r in rounds for latency in r.latencies],
        sum(r.server_cpu_seconds for r in rounds),
    )


async def wired(url: str) -> bool:
    """Whether the gateway accepts a real signed WAHA webhook (production's verifier and normalizer)."""
    [(path, body, headers)] = requests(1, 1, fakes=False)
    async with aiohttp.ClientSession() as session, session.post(url + path, data=body, headers=headers) as r:
        return r.status == 200


async def main() -> None:
    root = f"bgw{secrets.token_hex(3)}"
    client = await nats.connect(NATS_URL)
    js = client.jetstream()
    await ensure_streams(js, root, ("gateway",))
    # Enough new webhooks for the fastest run; past them a run would post duplicates.
    count = int(8000 * (WARMUP_SECONDS + MEASURE_SECONDS))
    try:
        async with server("gateway", root) as (url, _):
            fakes = not await wired(url)
        mode = "gateway-fake-normalizer" if fakes else "gateway"
        if fakes:
            print(
                "no normalizer is wired yet (gateway.bootstrap.webhook_adapters): the gateway is measured "
                "with the real WAHA verifier and the tests' fake normalizer (JSON parsed into one event)"
            )
        runs = [
            ("bare handler (uvloop, httptools)", "bare", 10),
            ("gateway, 10 instances", mode, 10),
            ("gateway, 10,000 instances", mode, 10_000),
            ("bare handler (asyncio, h11)", "bare-asyncio", 10),
        ]
        # Twice, the second time in mirrored order, merged: the box is shared, its load drifts.
        passes: dict[str, list[Result]] = {name: [] for name, _, _ in runs}
        for name, server_mode, instances in [*runs, *reversed(runs)]:
            work = list(requests(instances, count, fakes=fakes))
            async with server(server_mode, root) as (url, pid):
                passes[name].append(await load(name, url, pid, work))
        results = [merged(rounds) for rounds in passes.values()]
    finally:
        await delete_streams(js, root, ("gateway",))
        await client.close()

    cores = os.cpu_count()
    print(f"{CONCURRENCY} concurrent posts, {MEASURE_SECONDS:.0f} s each, one server process, {cores} cores")
    print(f"{'':36}{'webhooks/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/wh':>11}{'refused':>9}")
    for r in results:
        print(
            f"{r.name:36}{r.rate:11.0f}{r.percentile(50):9.1f}{r.percentile(99):9.1f}{r.cpu_us:11.0f}{r.refused:9d}"
        )
    bare, small, large, asyncio_bare = results
    print(
        f"gateway / bare handler: {small.rate / bare.rate:.2f}x webhooks/s, "
        f"{bare.cpu_us / small.cpu_us:.2f}x by server CPU per webhook (target >= 0.7x)"
    )
    print(f"10,000 / 10 instances, CPU per webhook: {large.cpu_us / small.cpu_us:.2f}x (target ~1x)")
    print(f"uvloop+httptools / asyncio+h11, bare handler: {bare.rate / asyncio_bare.rate:.2f}x")
