"""kill -9 the nats-server twice during a run through the Gate and the Executor (both processes, on a
nats-server of our own with its own store, never the shared one), restarting it on the same port and
store each time: every intent is sent once and shows SENT, none is lost, none sent twice.

It prints how long a message sent around a kill took to show SENT at the Gate (not asserted)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path

from libs.messaging.nats_connection import connect_nats
from libs.messaging.streams import ensure_streams
from libs.provider_simulator import run_simulator
from libs.seedwork.ids import new_id
from libs.testing.waiting import eventually
from tests.conftest import REDIS_URL
from tests.sending_path import (
    FINAL,
    SIMULATOR_API_KEY,
    OwnNatsServer,
    RetryingClient,
    around,
    consumed,
    executor,
    gate,
    register_instances,
    send_to_sent,
    settled,
    spread,
)

INTENTS = 600
KILLS = 2
DOWN_SECONDS = 1.0  # how long the broker stays dead each time
RATE = 60  # intents a second
SESSIONS = 10
ORG = "org-nats-kill"


async def test_two_kill_9s_of_the_nats_server_lose_no_intent_and_send_none_twice(
    migrated_database, subject_root, redis_prefix, redis_client
):
    gate_url = migrated_database("gate_service")
    executor_url = migrated_database("executor_service")
    logs = Path(tempfile.mkdtemp(prefix="wl-nats-kill-"))
    root = f"{subject_root}nk"
    server = OwnNatsServer()
    await server.start()
    nats = await connect_nats(server.url, name="nats-kill-test")
    try:
        js = nats.jetstream()
        await ensure_streams(js, root)
        async with run_simulator(api_key=SIMULATOR_API_KEY) as simulator:
            sessions = [f"nats-kill-{n}" for n in range(SESSIONS)]
            for session in sessions:
                simulator.configure_session(session, latency_ms=5)
            await register_instances(js, root, ORG, sessions)
            the_gate = gate(
                database_url=gate_url,
                nats_url=server.url,
                root=root,
                redis_url=REDIS_URL,
                redis_prefix=f"{redis_prefix}nats-kill:",
                log=logs / "gate.log",
            )
            the_executor = executor(
                database_url=executor_url, nats_url=server.url, root=root, simulator_url=simulator.base_url,
                log=logs / "executor.log",
            )  # fmt: skip
            the_executor.start()
            the_gate.start()
            client = RetryingClient(f"127.0.0.1:{the_gate.grpc_port}", ORG, new_id()[-8:])
            windows: list[tuple[float, float]] = []
            try:
                await asyncio.gather(the_gate.ready(), the_executor.ready())
                durable = the_gate.env["GATE_CONSUMER_DURABLE_PREFIX"] + "-reputation"
                await consumed(js, root, "reputation", durable)
                submitting = asyncio.create_task(client.submit_all(INTENTS, rate=RATE))
                for kill in range(KILLS):
                    target = (kill + 1) * INTENTS // (KILLS + 2)

                    async def progressed(target: int = target) -> bool:
                        return len(simulator.ledger) >= target

                    await eventually(progressed, timeout=60, every=0.01)
                    killed_at = time.time()
                    server.kill()
                    await asyncio.sleep(DOWN_SECONDS)
                    await server.start()  # same port, same store: streams, consumers and their acks
                    windows.append((killed_at - 1.0, time.time() + 1.0))
                await asyncio.wait_for(submitting, timeout=120)
                rows = await settled(gate_url, ORG, INTENTS, timeout=90)
            finally:
                await asyncio.gather(the_gate.stop(), the_executor.stop())
            ledger = simulator.ledger
    finally:
        await nats.close()
        server.remove()

    delays = send_to_sent(ledger.entries, rows)
    final = Counter(row.status for row in rows)
    print(
        f"\nnats-server kills={len(windows)} intents={dict(final)} ledger={len(ledger)} "
        f"answers={dict(client.statuses)} repeated calls={dict(client.failures)}\n"
        f"send→SENT around the kills: {spread(around(delays, windows))}\n"
        f"send→SENT, all:             {spread([delay for _, delay in delays.values()])}"
    )

    assert len(windows) == KILLS
    keys = Counter(row.idempotency_key for row in rows)
    assert set(keys) == {client.key(n) for n in range(INTENTS)}  # nothing lost...
    assert set(keys.values()) == {1}  # ...and one intent per key
    assert ledger.duplicates() == {}  # no message sent twice
    assert set(final) <= FINAL, final
    assert final["SENT"] == len(delays) == len(ledger) == INTENTS  # the Gate running, every one is sent
