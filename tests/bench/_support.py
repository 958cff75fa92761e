"""Pieces the benchmarks share: throw-away databases, the provider simulator and a Gate, each in its own
process as in production, and removed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import psycopg

from tests.bench.gate_submit_intent import NO_LIMITS, free_port

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_ADMIN_URL = os.environ.get("WHATLEAD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("WHATLEAD_TEST_NATS", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("WHATLEAD_TEST_REDIS", "redis://127.0.0.1:6379/0")
SIMULATOR_API_KEY = "bench-key"


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


@contextlib.asynccontextmanager
async def gate_process(database_url: str, subject_root: str, redis_prefix: str, durable_prefix: str):  # type: ignore[no-untyped-def]
    """`python -m gate_service` on its own database, stream root and Redis prefix, rate caps lifted (as
    in the gate benchmark); yields its gRPC port once it serves. Its Redis keys are removed on exit."""
    from redis.asyncio import Redis

    port = free_port()
    env = {
        **os.environ,
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
    }
    gate = subprocess.Popen([sys.executable, "-m", "gate_service"], env=env, cwd=ROOT)  # noqa: ASYNC220
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
        yield port
    finally:
        gate.terminate()
        await asyncio.to_thread(gate.wait, 30)
        redis = Redis.from_url(REDIS_URL)
        async for key in redis.scan_iter(match=redis_prefix + "*", count=1000):
            await redis.delete(key)
        await redis.aclose()
