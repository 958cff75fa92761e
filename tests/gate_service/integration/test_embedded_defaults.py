"""The embedded default of `make run`: SQLite and the in-process rate store (JetStream still real)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from libs.db.migrations import upgrade
from libs.messaging.streams import delete_streams, ensure_streams
from libs.seedwork.clock import FakeClock
from libs.testing.waiting import eventually
from tests.conftest import ROOT
from tests.gate_service.integration.harness import register_instances, running_gate, text_request
from whatlead.gate.v1 import gate_pb2


@pytest.fixture
async def sqlite_url(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/gate.db"
    upgrade(url, ROOT / "gate_service" / "migrations")
    return url


@pytest.fixture
async def root(subject_root, jetstream):
    root = f"{subject_root}_gsq"
    await ensure_streams(jetstream, root)
    yield root
    await delete_streams(jetstream, root)


async def test_submit_replay_list_and_scheduler_on_sqlite(sqlite_url, root, jetstream, redis_prefix):
    clock = FakeClock(datetime.now(UTC))
    async with running_gate(sqlite_url, root, redis_prefix, clock=clock, redis_url="") as gate:
        [instance_id] = await register_instances(jetstream, root, gate, "org-sqlite", 1)
        requests = [text_request("org-sqlite", f"5511900000{n:03d}", key=f"k{n}") for n in range(12)]
        first = await asyncio.gather(*(gate.stub.SubmitIntent(r) for r in requests))
        again = await asyncio.gather(*(gate.stub.SubmitIntent(r) for r in requests))
        assert all(r.replayed for r in again)
        assert [r.intent.id for r in first] == [r.intent.id for r in again]
        statuses = [r.intent.status for r in first]
        # The harness phase allows 10 a day: the other two wait for tomorrow or are dropped.
        assert statuses.count(gate_pb2.INTENT_STATUS_APPROVED) == 10
        listed = await gate.stub.ListIntents(gate_pb2.ListIntentsRequest(organization_id="org-sqlite"))
        assert len(listed.intents) == 12
        assert {i.decided_by_instance_id for i in listed.intents if i.decided_by_instance_id} == {instance_id}

        pending = await gate.stub.SubmitIntent(
            text_request("org-sqlite", "5511900000999", not_before=_ts(clock.now() + timedelta(minutes=5)))
        )
        assert pending.intent.status == gate_pb2.INTENT_STATUS_QUEUED
        clock.advance(minutes=5, seconds=1)

        async def decided_again() -> bool:
            got = await gate.stub.GetIntent(
                gate_pb2.GetIntentRequest(organization_id="org-sqlite", intent_id=pending.intent.id)
            )
            return got.decision.attempt == 2

        await eventually(decided_again, timeout=10)


def _ts(moment):
    from libs.rpc.convert import to_timestamp

    return to_timestamp(moment)
