"""Caps survive a Redis loss (issue 17, ADR 0013): four instances with a cap of 10 sends an hour, the Gate's
Redis windows wiped before the cap is reached, and once more together with a Gate restart (as two
processes); the provider simulator's ledger (what was actually sent) shows no instance over its cap."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from functools import partial

from gate_service.domain.rates import next_hour
from libs.provider_simulator import run_simulator
from libs.seedwork.ids import new_id
from libs.testing.waiting import eventually
from tests.executor_service.integration.harness import API_KEY, own_streams, running, settings
from tests.gate_service.integration.harness import (
    RunningGate,
    register_instances,
    running_gate,
    text_request,
)
from whatlead.gate.v1 import gate_pb2

INSTANCES = 4
HOURLY_CAP = 10
ORG = "org-caps"
CAPPED = json.dumps(
    {
        phase: {"per_minute": 0, "per_hour": HOURLY_CAP, "per_day": 0, "min_interval_seconds": 0}
        for phase in ("INTERACTING", "STABLE")
    }
)


async def wipe(redis_client, prefix: str) -> int:
    """What a Redis that restarts empty does to the Gate: every key under its prefix gone (only this run's
    keys: the server is shared)."""
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await redis_client.delete(*keys)
    return len(keys)


async def submit(gate, first: int, count: int, *, together: bool = True) -> Counter[str]:
    """Submit `count` intents to distinct contacts, all at once (decided in a burst, the same snapshot
    ranking the instances alike) or one after the other (spread over the instances by their windows)."""
    requests = [
        text_request(ORG, f"55119{n:08d}", text=f"m{n}", key=f"k{n}") for n in range(first, first + count)
    ]
    if together:
        responses = await asyncio.gather(*(gate.stub.SubmitIntent(r) for r in requests))
    else:
        responses = [await gate.stub.SubmitIntent(r) for r in requests]
    return Counter(gate_pb2.IntentStatus.Name(r.intent.status) for r in responses)


async def test_no_instance_sends_over_its_hourly_cap_after_redis_loses_the_windows(
    migrated_database, jetstream, subject_root, redis_client, redis_prefix
):
    now = datetime.now(UTC)
    if (next_hour(now) - now).total_seconds() < 90:  # the whole run in one hour window
        await asyncio.sleep((next_hour(now) - now).total_seconds() + 1)
    gate_database = migrated_database("gate_service")
    executor_database = migrated_database("executor_service")
    gate_prefix = f"{redis_prefix}caps:{new_id()[-8:]}:"
    durable_prefix = f"gate-{new_id()[-12:]}"
    approved: Counter[str] = Counter()
    async with (
        own_streams(jetstream, subject_root) as root,
        run_simulator(api_key=API_KEY) as simulator,
        running(settings(executor_database, root, simulator.base_url)),
    ):

        def the_gate() -> AbstractAsyncContextManager[RunningGate]:
            """The same Gate each time: its database, its Redis prefix, its durable consumers."""
            return running_gate(
                gate_database,
                root,
                redis_prefix,
                phase_policies=CAPPED,
                redis_key_prefix=gate_prefix,
                consumer_durable_prefix=durable_prefix,
            )

        async def all_sent() -> bool:
            return len(simulator.ledger) == approved["INTENT_STATUS_APPROVED"]

        def sent_so_far() -> list[int]:
            return sorted(Counter(e.session for e in simulator.ledger.entries).values())

        async with the_gate() as gate:
            instances = await register_instances(jetstream, root, gate, ORG, INSTANCES)
            approved += await submit(gate, 0, 20, together=False)  # 5 an instance
            await eventually(all_sent, timeout=30)
            phases = [sent_so_far()]
            assert max(phases[0]) < HOURLY_CAP

            # Every instance under its cap: the burst that finds the windows lost fills the best ranked.
            assert await wipe(redis_client, gate_prefix) > 0
            approved += await submit(gate, 20, 12)
            await eventually(all_sent, timeout=30)
            phases.append(sent_so_far())

        # Restarted as two processes sharing Redis and PostgreSQL, both finding the windows lost at once.
        assert await wipe(redis_client, gate_prefix) > 0
        async with (
            the_gate() as one,
            the_gate() as other,
        ):
            for gate in (one, other):
                await eventually(partial(_knows, gate, instances), timeout=10)
            for burst in await asyncio.gather(submit(one, 32, 20), submit(other, 52, 20)):
                approved += burst
            await eventually(all_sent, timeout=30)
            await asyncio.sleep(0.5)  # nothing more arrives
            phases.append(sent_so_far())

    sent = Counter(
        (entry.session, int(entry.at // 3600)) for entry in simulator.ledger.entries
    )  # per instance and hour, as the cap counts
    per_instance = Counter(entry.session for entry in simulator.ledger.entries)
    print(f"\nsent per instance after each phase {phases}; intents {dict(approved)}")
    assert len(per_instance) == INSTANCES
    assert max(sent.values()) <= HOURLY_CAP
    assert sum(per_instance.values()) == INSTANCES * HOURLY_CAP  # every cap reached, none passed
    assert simulator.ledger.duplicates() == {}


async def _knows(gate: RunningGate, instances: list[str]) -> bool:
    return all(i in gate.app.projection.instances for i in instances)
