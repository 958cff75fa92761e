"""Pieces the benchmarks share: throw-away databases, the provider simulator, a Gate and an Executor, each
in its own process as in production, and removed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import psycopg

from libs.messaging import envelope
from libs.testing.jetstream import directory_key  # noqa: F401 (the benches' import of it)

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_ADMIN_URL = os.environ.get("WHATLEAD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("WHATLEAD_TEST_NATS", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("WHATLEAD_TEST_REDIS", "redis://127.0.0.1:6379/0")
SIMULATOR_API_KEY = "bench-key"
# The service credential of the processes a bench starts (each run its own).
SERVICE_TOKEN = secrets.token_urlsafe(32)
# Phase caps lifted (no caps, no minimum interval): every decision takes the full path and approves.
NO_LIMITS = json.dumps(
    {
        phase: {"per_minute": 0, "per_hour": 0, "per_day": 0, "min_interval_seconds": 0}
        for phase in ("NEWBORN", "WARMING", "INTERACTING", "STABLE")
    }
)


def credential_channel(address: str, credential: str, **kwargs: Any) -> grpc.aio.Channel:
    """A channel presenting `credential` (an API key, or SERVICE_TOKEN) on every call."""
    from libs.rpc.client import PresentCredential

    return grpc.aio.insecure_channel(address, interceptors=[PresentCredential(credential)], **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_cpu(pid: int) -> tuple[str, float]:
    """A process's name and its user + system CPU seconds so far (Linux /proc); OSError once it is gone."""
    with open(f"/proc/{pid}/stat") as stat:
        name, rest = stat.read().split(" (", 1)[1].rsplit(")", 1)
    fields = rest.split()
    return name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> set[int]:
    """`pid` and every process below it (a Gate started with GATE_PROCESSES > 1 serves from children)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            kids = [int(child) for child in children.read().split()]
    except OSError:
        return {pid}
    return {pid}.union(*map(process_tree, kids))


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of a process and every process below it."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):  # gone meanwhile
            total += process_cpu(member)[1]
    return total


@contextlib.contextmanager
def fresh_database(name: str) -> Iterator[str]:
    """A new PostgreSQL database (libpq URL), dropped on exit."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://")


@contextlib.asynccontextmanager
async def simulator_process() -> AsyncIterator[str]:
    """The WAHA-compatible provider simulator (no added latency, no webhooks); yields its base URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "libs.provider_simulator",
        "--port",
        "0",
        "--api-key",
        SIMULATOR_API_KEY,
        "--log-level",
        "WARNING",
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
    try:
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        process.terminate()
        await process.wait()


class Ledger:
    """The simulator's record of accepted sends: how many, and how many were duplicates."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self._url = url + "/_sim/ledger"
        self._http = http
        self._headers = {"X-Api-Key": SIMULATOR_API_KEY}

    async def clear(self) -> None:
        async with self._http.delete(self._url, headers=self._headers) as response:
            response.raise_for_status()

    async def summary(self) -> dict[str, Any]:
        async with self._http.get(self._url, params={"entries": "0"}, headers=self._headers) as response:
            return await response.json()


@dataclass(frozen=True)
class GateProcess:
    port: int
    pid: int


@contextlib.asynccontextmanager
async def gate_process(
    database_url: str,
    subject_root: str,
    redis_prefix: str,
    durable_prefix: str,
    *,
    processes: int = 1,
    extra_env: dict[str, str] | None = None,
    module: str = "gate_service",
):
    """`python -m gate_service` (`processes` of them sharing the port) on its own database, stream root and
    Redis prefix, rate caps lifted; yields its port and pid once it serves. Its Redis keys are removed on
    exit. `module`: what runs it (a bench's own variant of `gate_service`)."""
    from redis.asyncio import Redis

    port = free_port()
    env = {
        **os.environ,
        "WHATLEAD_SERVICE_TOKEN": SERVICE_TOKEN,
        "GATE_DATABASE_URL": sqlalchemy_url(database_url),
        "GATE_NATS_URL": NATS_URL,
        "GATE_SUBJECT_ROOT": subject_root,
        "GATE_REDIS_URL": REDIS_URL,
        "GATE_REDIS_KEY_PREFIX": redis_prefix,
        "GATE_GRPC_PORT": str(port),
        "GATE_METRICS_PORT": str(free_port()),
        "GATE_LOG_LEVEL": "WARNING",
        "GATE_PHASE_POLICIES": NO_LIMITS,
        "GATE_CONTACT_MIN_GAP_SECONDS": "0",
        "GATE_CONTACT_HOURLY_CAP": "0",
        "GATE_CONSUMER_DURABLE_PREFIX": durable_prefix,
        "GATE_PROCESSES": str(processes),
        **(extra_env or {}),
    }
    gate = subprocess.Popen([sys.executable, "-m", module], env=env, cwd=ROOT)  # noqa: ASYNC220
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
        yield GateProcess(port, gate.pid)
    finally:
        gate.terminate()
        await asyncio.to_thread(gate.wait, 30)
        redis = Redis.from_url(REDIS_URL)
        async for key in redis.scan_iter(match=redis_prefix + "*", count=1000):
            await redis.delete(key)
        await redis.aclose()


@contextlib.asynccontextmanager
async def executor_process(database_url: str, subject_root: str, simulator_url: str, workers: int):
    """`python -m executor_service` (consumers, workers, relay, reconciler) on its own database and stream
    root, sending through the simulator; yields its pid once it serves."""
    port = free_port()
    env = {
        **os.environ,
        "WHATLEAD_SERVICE_TOKEN": SERVICE_TOKEN,
        "EXECUTOR_DATABASE_URL": sqlalchemy_url(database_url),
        "EXECUTOR_NATS_URL": NATS_URL,
        "EXECUTOR_SUBJECT_ROOT": subject_root,
        "EXECUTOR_SIMULATOR_URL": simulator_url,
        "EXECUTOR_SIMULATOR_API_KEY": SIMULATOR_API_KEY,
        "EXECUTOR_WORKERS": str(workers),
        "EXECUTOR_GRPC_PORT": str(port),
        "EXECUTOR_METRICS_PORT": str(free_port()),
        "EXECUTOR_LOG_LEVEL": "WARNING",
    }
    executor = subprocess.Popen([sys.executable, "-m", "executor_service"], env=env, cwd=ROOT)  # noqa: ASYNC220
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
        yield executor.pid
    finally:
        executor.terminate()
        await asyncio.to_thread(executor.wait, 30)


async def register(js, root: str, organization: str, n: int) -> None:
    """`n` connected simulator instances of `organization`, as the reputation context announces them."""
    from libs.seedwork.ids import new_id
    from libs.testing.jetstream import publish, simulator_instance_registered

    def registered(instance_id: str):
        return simulator_instance_registered(
            organization, instance_id, provider_instance_ref=f"bench-{instance_id[-12:]}"
        )

    await asyncio.gather(*(publish(js, root, registered(new_id())) for _ in range(n)))


async def consumed(js, root: str, durable: str) -> None:
    from libs.messaging import envelope

    for _ in range(600):
        try:
            info = await js.consumer_info(envelope.stream_name(root, "reputation"), durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
        except Exception:  # not created yet
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("the gate did not consume the instances in time")


async def publish_all(js: Any, root: str, events: Iterable[Any], *, chunk: int = 500) -> None:
    """Events into JetStream as the relays publish them (type and id headers), acks awaited `chunk` at a
    time: what the service under bench finds waiting."""
    pending: list[Any] = []
    for message in events:
        encoded = envelope.encode(message)
        pending.append(
            js.publish(
                envelope.full_subject(root, encoded.subject_suffix),
                encoded.payload,
                headers={envelope.MSG_ID_HEADER: encoded.event_id, envelope.TYPE_HEADER: encoded.type_name},
            )
        )
        if len(pending) == chunk:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
