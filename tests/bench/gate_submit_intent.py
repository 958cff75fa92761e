"""SubmitIntent over gRPC (PostgreSQL + Redis + NATS), 64 concurrent callers, for organizations of 10, 100
and 1,000 instances, beside an empty grpc.aio echo measured the same way (the Python gRPC ceiling here).

Targets: throughput >= 0.5x the echo; 1,000 instances cost <= 1.25x of 10 instances.
Measured with one Gate process, then with PROCESSES of them sharing the port (the output says which); server
CPU is that of every Gate process. Each size is measured twice, in mirrored order, and the two merged.

The naive baseline the issue names (one Redis pipeline and one PostgreSQL commit per call, no decision)
runs on the same stack. The Gate runs as its own process (`python -m gate_service`, as in production) on a
fresh database, its own stream root and Redis key prefix; all are removed at the end. Phase caps are
lifted (no caps, no minimum interval, no per-contact limits) so every call takes the full path: idempotency
lookup, rate snapshot, per-candidate rules, scoring, atomic reservation, group commit of the intent and its
two events.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import psycopg
import uvloop

from tests.bench._support import (
    NATS_URL,
    REDIS_URL,
    consumed,
    credential_channel,
    directory_key,
    free_port,
    fresh_database,
    gate_process,
    process_cpu,
    process_tree,
    register,
)

CONCURRENCY = 64
CONNECTIONS = 4  # client connections the callers are spread over (SO_REUSEPORT balances connections)
WARMUP_SECONDS = 1.5
MEASURE_SECONDS = 5.0
SIZES = (10, 100, 1000)
PROCESSES = 2  # the second pass: Gate processes sharing the port (GATE_PROCESSES), one per core here
REFRESH_SECONDS = 0.5  # GATE_PROJECTION_REFRESH_SECONDS: how soon a process sees what another consumed
ECHO_METHOD = "/bench.Echo/Echo"
NAIVE_METHOD = "/bench.Naive/Call"


@dataclass
class Result:
    name: str
    calls: int
    seconds: float
    latencies: list[float]
    all_calls: int = 0  # warm-up included, as the CPU is
    # Seconds of CPU during the whole run, by part of the box (see box_cpu): "server" is the one under test.
    box_cpu: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_per_call_us(self) -> float:
        return self.box_us("server")

    def merged(self, other: Result) -> Result:
        """Two measurements of the same thing as one."""
        return Result(
            self.name,
            self.calls + other.calls,
            self.seconds + other.seconds,
            self.latencies + other.latencies,
            self.all_calls + other.all_calls,
            dict(Counter(self.box_cpu) + Counter(other.box_cpu)),
        )

    def box_us(self, part: str) -> float:
        return self.box_cpu.get(part, 0.0) / max(1, self.all_calls) * 1e6

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# Where the rest of the box's CPU goes: the stores a decision writes to, and the kernel's own threads (disk
# writeback of the stores' logs, network); anything else running on the machine is "other".
BOX_PARTS = {"postgres": "postgres", "redis-server": "redis", "nats-server": "nats"}
KERNEL_THREADS = ("kworker", "ksoftirqd", "kdamond", "jbd2", "rcu_", "migration", "kswapd")


def box_cpu(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of every process on the machine, by part: this bench client, the server under
    test (with its children) and BOX_PARTS, the kernel threads, everything else."""
    parts = {"client": sum(os.times()[:2]), "server": 0.0}
    server = process_tree(server_pid)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            name, seconds = process_cpu(int(entry.name))
        except OSError:  # gone meanwhile
            continue
        if int(entry.name) in server:
            part = "server"
        else:
            part = BOX_PARTS.get(name) or ("kernel" if name.startswith(KERNEL_THREADS) else "other")
        parts[part] = parts.get(part, 0.0) + seconds
    return parts


@asynccontextmanager
async def connections(port: int, credential: str | None = None) -> AsyncIterator[list[grpc.aio.Channel]]:
    """CONNECTIONS channels, each on its own TCP connection (a local subchannel pool: channels with equal
    arguments would otherwise share one), as several clients would; the echo and the Gate alike. With
    `credential`, every call presents it."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [
        credential_channel(f"127.0.0.1:{port}", credential, options=options)
        if credential is not None
        else grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options)
        for _ in range(CONNECTIONS)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), timeout=30)
        yield channels
    finally:
        for channel in channels:
            await channel.close()


async def drive(name: str, call: Callable[[int, int], Awaitable[None]], server_pid: int) -> Result:
    """CONCURRENCY callers in a closed loop; only calls that start inside the measured window count."""
    loop = asyncio.get_running_loop()
    start = loop.time() + WARMUP_SECONDS
    end = start + MEASURE_SECONDS
    latencies: list[float] = []

    async def caller(n: int) -> None:
        i = 0
        while True:
            began = loop.time()
            if began >= end:
                return
            await counted(n, i)
            i += 1
            if began >= start:
                latencies.append(loop.time() - began)

    total = 0

    async def counted(n: int, i: int) -> None:
        nonlocal total
        await call(n, i)
        total += 1

    before = box_cpu(server_pid)
    await asyncio.gather(*(caller(n) for n in range(CONCURRENCY)))
    after = box_cpu(server_pid)
    used = {part: after[part] - before.get(part, 0.0) for part in after}
    return Result(name, len(latencies), MEASURE_SECONDS, latencies, total, used)


# --- the echo ceiling ---------------------------------------------------------------------------------


async def serve_bench_method(
    port: int,
    service: str,
    method: str,
    behaviour: Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]],
) -> None:
    """The same server stack as the Gate's (libs.rpc GrpcServer: interceptor, health, reflection, the
    Gate's number of acceptors, on uvloop), with one method taking and answering bytes."""
    from gate_service.config import GateSettings
    from libs.rpc.server import GrpcServer, ServicerBinding

    handler = grpc.method_handlers_generic_handler(
        service, {method: grpc.unary_unary_rpc_method_handler(behaviour)}
    )

    def add(_: object, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((handler,))

    binding = ServicerBinding(None, add, service)
    acceptors = GateSettings.model_fields["grpc_acceptors"].default
    # No authenticator: these methods are the bench's own (no access option), and the echo is the ceiling.
    server = GrpcServer([binding], host="127.0.0.1", port=port, acceptors=acceptors, authenticator=None)
    await server.start()
    await asyncio.Event().wait()


async def serve_echo(port: int) -> None:
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    await serve_bench_method(port, "bench.Echo", "Echo", echo)


async def serve_naive(port: int, database_url: str, redis_prefix: str) -> None:
    """The issue's naive handler: per call one Redis pipeline (a rate counter and its expiry) and one
    PostgreSQL insert and commit, on a pool of connections; no batching, no decision."""
    import psycopg
    from redis.asyncio import Redis

    from libs.seedwork.ids import new_id

    redis = Redis.from_url(REDIS_URL)
    pool: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()
    for _ in range(10):
        pool.put_nowait(await psycopg.AsyncConnection.connect(database_url))

    async def naive(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        key = f"{redis_prefix}{hash(request) % 100}"
        pipe = redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 60)
        await pipe.execute()
        connection = await pool.get()
        try:
            await connection.execute(NAIVE_INSERT, (new_id(), request))
            await connection.commit()
        finally:
            pool.put_nowait(connection)
        return request

    await serve_bench_method(port, "bench.Naive", "Call", naive)


NAIVE_TABLE = (
    "CREATE TABLE naive_calls (id text PRIMARY KEY, body bytea, created_at timestamptz DEFAULT now())"
)
NAIVE_INSERT = "INSERT INTO naive_calls (id, body) VALUES (%s, %s)"


async def measure_method(name: str, method: str, server_args: list[str]) -> Result:
    """Runs `server_args` of this module as a server process and drives `method` like the Gate."""
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 - a server process we stop ourselves
        [
            sys.executable,
            "-m",
            "tests.bench.gate_submit_intent",
            *server_args[:1],
            str(port),
            *server_args[1:],
        ]
    )
    try:
        async with connections(port) as channels:
            stubs: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
                channel.unary_unary(method) for channel in channels
            ]

            async def call(n: int, i: int) -> None:
                # About the size of a SubmitIntentRequest, and different every call.
                await stubs[n % CONNECTIONS](f"{n}-{i}".encode().ljust(200, b"x"), timeout=10)

            return await drive(name, call, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)


async def measure_echo() -> Result:
    return await measure_method("echo, the Gate's server stack", ECHO_METHOD, ["--echo"])


async def measure_naive(database_url: str, redis_prefix: str) -> Result:
    from redis.asyncio import Redis

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(NAIVE_TABLE)
    try:
        return await measure_method(
            "naive: Redis pipeline + PG commit", NAIVE_METHOD, ["--naive", database_url, redis_prefix]
        )
    finally:
        redis = Redis.from_url(REDIS_URL)
        async for key in redis.scan_iter(match=redis_prefix + "*", count=1000):
            await redis.delete(key)
        await redis.aclose()


# --- the Gate -------------------------------------------------------------------------------------------


async def measure_gate(
    port: int, pid: int, organization: str, name: str, key: str | None
) -> tuple[Result, dict[str, int]]:
    """`key`: the organization's API key every call presents (None: a Gate that authenticates nobody)."""
    from whatlead.common.v1 import common_pb2
    from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc

    outcomes: dict[str, int] = {}
    run = secrets.token_hex(3)
    async with connections(port, key) as channels:
        stubs = [gate_pb2_grpc.GateServiceStub(channel) for channel in channels]

        async def call(n: int, i: int) -> None:
            response = await stubs[n % CONNECTIONS].SubmitIntent(
                gate_pb2.SubmitIntentRequest(
                    organization_id=organization,
                    idempotency_key=f"{run}-{n}-{i}",
                    target=common_pb2.Target(
                        kind=common_pb2.TARGET_KIND_PHONE, value=f"55{n + 11:02d}9{i:08d}"
                    ),
                    type=common_pb2.MESSAGE_TYPE_TEXT,
                    purpose=common_pb2.PURPOSE_DISPATCH,
                    payload=common_pb2.MessagePayload(text=common_pb2.TextPayload(text="bench message")),
                ),
                timeout=10,
            )
            key = gate_pb2.IntentStatus.Name(response.intent.status).removeprefix("INTENT_STATUS_")
            outcomes[key] = outcomes.get(key, 0) + 1

        return await drive(name, call, pid), outcomes


async def run() -> None:
    import nats

    from libs.messaging.streams import delete_streams, ensure_streams

    token = secrets.token_hex(4)
    root = f"b{token}"
    durable_prefix = f"bench-{token}"
    client = await nats.connect(NATS_URL)
    js = client.jetstream()
    await ensure_streams(js, root)
    refresh = {"GATE_PROJECTION_REFRESH_SECONDS": str(REFRESH_SECONDS)}
    results: dict[int, list[tuple[Result, dict[str, int]]]] = {}
    keys = {size: await directory_key(js, root, f"bench-org-{size}") for size in SIZES}
    if os.environ.get("BENCH_GATE_AUTH_ONLY") == "1":
        try:
            with fresh_database(f"wl_bench_{token}_auth") as database:
                await register(js, root, f"bench-org-{SIZES[0]}", SIZES[0])
                authenticated, open_ = await measure_authentication(
                    js, database, root, f"wl:bench:{token}:", durable_prefix, keys[SIZES[0]]
                )
        finally:
            await delete_streams(js, root)
            await client.close()
        print_authentication(authenticated, open_)
        return
    try:
        echo = await measure_echo()
        with fresh_database(f"wl_bench_{token}_naive") as database:
            naive = await measure_naive(database, f"wl:bench:{token}:naive:")
        with fresh_database(f"wl_bench_{token}_gate") as database:
            for processes in (1, PROCESSES):
                # The same database and instances each time: the processes load them at start-up.
                async with gate_process(
                    database,
                    root,
                    f"wl:bench:{token}:",
                    durable_prefix,
                    processes=processes,
                    extra_env=refresh,
                ) as gate:
                    suffix = "" if processes == 1 else f", {processes} processes"
                    if processes == 1:
                        for size in SIZES:
                            await register(js, root, f"bench-org-{size}", size)
                        await consumed(js, root, f"{durable_prefix}-reputation")
                    else:
                        await asyncio.sleep(2 * REFRESH_SECONDS)  # every process has loaded the instances
                    # Each size twice, in mirrored order (10, 100, 1,000, 1,000, 100, 10): a box that speeds
                    # up or slows down during the pass then weighs on every size alike.
                    measured: dict[int, tuple[Result, dict[str, int]]] = {}
                    for size in (*SIZES, *reversed(SIZES)):
                        result, outcomes = await measure_gate(
                            gate.port,
                            gate.pid,
                            f"bench-org-{size}",
                            f"SubmitIntent, {size} instances{suffix}",
                            keys[size],
                        )
                        if size in measured:
                            first, first_outcomes = measured[size]
                            result = first.merged(result)
                            outcomes = dict(Counter(first_outcomes) + Counter(outcomes))
                        measured[size] = (result, outcomes)
                    results[processes] = [measured[size] for size in SIZES]
            authenticated, open_ = await measure_authentication(
                js, database, root, f"wl:bench:{token}:", durable_prefix, keys[SIZES[0]]
            )
    finally:
        await delete_streams(js, root)
        await client.close()

    print(
        f"{CONCURRENCY} concurrent callers, {MEASURE_SECONDS:.0f} s measured after {WARMUP_SECONDS} s warm-up"
    )
    header = f"{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'x echo':>9}{'x 10 inst.':>12}{'srv CPU/call':>14}"
    print(f"{'':34}{header}")
    print(
        f"{echo.name:34}{echo.rate:10.0f}{echo.percentile(0.5):9.2f}{echo.percentile(0.99):9.2f}{1.0:9.2f}"
        f"{'':12}{echo.cpu_per_call_us:11.0f} us"
    )
    print(
        f"{naive.name:34}{naive.rate:10.0f}{naive.percentile(0.5):9.2f}{naive.percentile(0.99):9.2f}"
        f"{naive.rate / echo.rate:9.2f}{'':12}{naive.cpu_per_call_us:11.0f} us"
    )
    for rows in results.values():
        base_cost = 1 / rows[0][0].rate
        for result, outcomes in rows:
            cost = (1 / result.rate) / base_cost
            print(
                f"{result.name:34}{result.rate:10.0f}{result.percentile(0.5):9.2f}"
                f"{result.percentile(0.99):9.2f}{result.rate / echo.rate:9.2f}{cost:12.2f}"
                f"{result.cpu_per_call_us:11.0f} us   {outcomes}"
            )
    print_box(echo, naive, [result for rows in results.values() for result, _ in rows])
    print_authentication(authenticated, open_)
    for processes, rows in results.items():
        worst = min(r.rate for r, _ in rows) / echo.rate
        spread = (1 / rows[-1][0].rate) / (1 / rows[0][0].rate)
        cpu_spread = rows[-1][0].cpu_per_call_us / rows[0][0].cpu_per_call_us
        print(
            f"targets, {processes} process{'es' if processes > 1 else ''}: throughput >= 0.50x echo -> "
            f"{worst:.2f}x {'OK' if worst >= 0.5 else 'MISSED'}; cost(1,000) <= 1.25x cost(10) -> "
            f"{spread:.2f}x by throughput, {cpu_spread:.2f}x by server CPU per call "
            f"{'OK' if min(spread, cpu_spread) <= 1.25 else 'MISSED'}"
        )


async def measure_authentication(
    js: Any, database: str, root: str, redis_prefix: str, durable_prefix: str, key: str
) -> tuple[Result, Result]:
    """SubmitIntent for the organization of SIZES[0] instances, on one Gate process that authenticates
    every call (an API key, as clients call) and on one built without an authenticator, in mirrored
    order (on, off, off, on), same database and instances: what authentication costs."""
    organization = f"bench-org-{SIZES[0]}"
    runs: dict[bool, list[Result]] = {True: [], False: []}
    for authenticate, rounds in ((True, 1), (False, 2), (True, 1)):
        module = "gate_service" if authenticate else "tests.bench._gate_without_auth"
        async with gate_process(
            database,
            root,
            redis_prefix,
            durable_prefix,
            extra_env={"GATE_PROJECTION_REFRESH_SECONDS": str(REFRESH_SECONDS)},
            module=module,
        ) as gate:
            await consumed(js, root, f"{durable_prefix}-reputation")
            await asyncio.sleep(2 * REFRESH_SECONDS)  # the instances are loaded
            for _ in range(rounds):
                name = f"SubmitIntent, authentication {'on' if authenticate else 'off'}"
                result, _ = await measure_gate(
                    gate.port, gate.pid, organization, name, key if authenticate else None
                )
                runs[authenticate].append(result)
    on, off = (runs[flag][0].merged(runs[flag][1]) for flag in (True, False))
    return on, off


def print_authentication(on: Result, off: Result) -> None:
    ratio = on.rate / off.rate
    print(f"authentication, {SIZES[0]} instances, 1 process (mirrored runs: on, off, off, on):")
    for result in (off, on):
        print(
            f"  {result.name:40}{result.rate:10.0f} calls/s{result.percentile(0.5):9.2f} ms p50"
            f"{result.cpu_per_call_us:9.0f} us server CPU/call"
        )
    print(
        f"target: on >= 0.95x off -> {ratio:.3f}x ({(1 - ratio) * 100:+.1f} % fewer calls/s) "
        f"{'OK' if ratio >= 0.95 else 'MISSED'}"
    )


BOX_COLUMNS = ("client", "server", "postgres", "redis", "nats", "kernel", "other")


def print_box(echo: Result, naive: Result, results: list[Result]) -> None:
    """Every part of the box's CPU per call, and what the target leaves the Gate: at 0.5x the echo, the
    machine's cores give each call a fixed budget, which the bench client and the stores share with it."""
    cores = os.cpu_count() or 1
    print(f"CPU per call on the whole box, us ({cores} cores; the same runs, warm-up included):")
    print(f"{'':34}" + "".join(f"{column:>10}" for column in (*BOX_COLUMNS, "total")))
    for result in (echo, naive, *results):
        values = [result.box_us(column) for column in BOX_COLUMNS]
        print(f"{result.name:34}" + "".join(f"{value:10.0f}" for value in (*values, sum(values))))
    budget = cores / (0.5 * echo.rate) * 1e6
    others = [sum(r.box_us(c) for c in BOX_COLUMNS if c not in ("server", "other")) for r in results]
    print(
        f"at 0.50x the echo ({0.5 * echo.rate:.0f} calls/s) the box has {budget:.0f} us of CPU per call; "
        f"the bench client and the stores alone used {min(others):.0f}-{max(others):.0f} us of it per "
        "SubmitIntent, leaving the Gate at most the rest"
    )


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--echo":
        uvloop.run(serve_echo(int(sys.argv[2])))
    elif len(sys.argv) == 5 and sys.argv[1] == "--naive":
        uvloop.run(serve_naive(int(sys.argv[2]), sys.argv[3], sys.argv[4]))
    else:
        main()
