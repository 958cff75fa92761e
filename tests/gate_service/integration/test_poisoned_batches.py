"""One bad request never fails another (ADR 0031): requests the database refuses, committed in the same
group-commit batch as good ones, fail alone with INVALID_ARGUMENT; the good ones are written as if alone;
no rate slot outlives a request that failed."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gate_service.application.intent_creation import CreationResult
from gate_service.application.submit_intent import SubmitIntent
from gate_service.domain.intent import IntentOrigin, IntentStatus, TextPayload
from gate_service.infrastructure.batching import WriteRequest
from gate_service.infrastructure.tables import intents, messaging
from libs.messaging.streams import delete_streams, ensure_streams
from libs.rpc.errors import field_violations
from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import InvalidArgument, RefusedByStore
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import MessageType, Purpose, TargetKind
from tests.conftest import REDIS_URL
from tests.gate_service.integration.harness import RunningGate, register_instances, running_gate, text_request
from tests.gate_service.unit.support import new_intent
from whatlead.gate.v1 import gate_pb2

ROUNDS = 20
VALID_PER_ROUND = 100
INSTANCES = 4
TOO_LONG_ORG = "o" * 65  # the column holds 64
INTERNALS = ("psycopg", "Error", "DETAIL", "CONTEXT", "Traceback", "varying", "\\u0000")


# --- the writer and the use case, below any request validation -----------------------------------------


def unit(clock: FakeClock, **overrides: Any) -> WriteRequest:
    intent = new_intent(clock, **overrides)
    return WriteRequest(inserts=[intent], events=intent.pull_events())


async def stored(engine: AsyncEngine) -> tuple[set[str], int]:
    """The ids of the stored intents, and how many events the outbox holds."""
    async with engine.connect() as connection:
        ids: set[str] = set((await connection.execute(select(intents.c.id))).scalars())
        events = await connection.execute(select(func.count()).select_from(messaging.outbox))
    return ids, events.scalar_one()


async def test_units_the_database_refuses_fail_alone_and_the_others_are_written_with_their_events(
    writer, engine
):
    clock = FakeClock()
    good = [unit(clock) for _ in range(40)]
    refused = {
        "organization_id": unit(clock, organization_id=TOO_LONG_ORG),
        "campaign_id": unit(clock, campaign_id="spring\x00sale"),
        "idempotency_key": unit(clock, idempotency_key="key-\x00"),
    }
    batch = [*good[:13], refused["organization_id"], *good[13:27], refused["campaign_id"], *good[27:]]
    batch.append(refused["idempotency_key"])

    # Submitted together, so they share one batch: one statement that the database refuses as a whole.
    results = await asyncio.gather(*(writer.write(r) for r in batch), return_exceptions=True)

    outcome = dict(zip(map(id, batch), results, strict=True))
    assert [outcome[id(r)] for r in good] == [None] * len(good)
    for field, request in refused.items():
        error = outcome[id(request)]
        assert isinstance(error, RefusedByStore), error
        assert [v.field for v in error.violations] == [field]
        assert not any(word in str(error) for word in INTERNALS), str(error)
    ids, event_count = await stored(engine)
    assert ids == {r.inserts[0].id for r in good}
    # Each unit's events (its IntentCreated) are written with its intent and only then.
    assert event_count == sum(len(r.events) for r in good)


async def test_an_update_the_database_refuses_is_rolled_back_alone_in_a_mixed_batch(writer, engine):
    clock = FakeClock()
    existing = [unit(clock) for _ in range(2)]
    for request in existing:
        await writer.write(request)
    good_update, bad_update = (r.inserts[0] for r in existing)
    for intent in (good_update, bad_update):
        intent.version += 1  # as a decision would
    bad_update.decided_by_instance_id = "i" * 37  # the column holds 36
    inserts = [unit(clock) for _ in range(5)]

    results = await asyncio.gather(
        writer.write(WriteRequest(updates=[(good_update, good_update.version - 1)])),
        writer.write(WriteRequest(updates=[(bad_update, bad_update.version - 1)])),
        *(writer.write(r) for r in inserts),
        return_exceptions=True,
    )

    assert results[0] is None and results[2:] == [None] * len(inserts)
    assert isinstance(results[1], RefusedByStore)
    assert [v.field for v in results[1].violations] == ["decided_by_instance_id"]
    async with engine.connect() as connection:
        versions = dict((await connection.execute(select(intents.c.id, intents.c.version))).all())
    assert versions[good_update.id] == good_update.version
    assert versions[bad_update.id] == 1  # untouched
    assert all(r.inserts[0].id in versions for r in inserts)


async def test_a_lost_connection_fails_the_whole_batch_without_splitting_it(writer, engine):
    """Not a refusal of one unit's data: every unit gets the connection's error (mapped to UNAVAILABLE
    upstream), none a refusal; the next batch is written on a fresh connection."""
    clock = FakeClock()
    await writer.write(unit(clock))  # the writer now holds a connection
    async with engine.connect() as admin:
        await admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        await admin.commit()
    batch = [unit(clock) for _ in range(6)]

    results = await asyncio.gather(*(writer.write(r) for r in batch), return_exceptions=True)

    assert all(isinstance(r, psycopg.OperationalError) for r in results), results
    after = unit(clock)
    await writer.write(after)
    ids, _ = await stored(engine)
    assert after.inserts[0].id in ids and not ids & {r.inserts[0].id for r in batch}


# --- a running Gate ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def gate_root(subject_root, jetstream):
    root = f"{subject_root}_poison"
    await ensure_streams(jetstream, root)
    yield root
    await delete_streams(jetstream, root)


# Room for every valid submit of the run (4 instances x 1,000 a day): each bad request that the decision
# approves takes a slot first, which its failure must give back.
ROOMY = json.dumps(
    {"INTERACTING": {"per_minute": 0, "per_hour": 0, "per_day": 1000, "min_interval_seconds": 0}}
)


@pytest.fixture(scope="module")
async def gate(migrated_database, gate_root, redis_prefix, jetstream) -> AsyncIterator[RunningGate]:
    async with running_gate(
        migrated_database("gate_service"), gate_root, redis_prefix, phase_policies=ROOMY
    ) as running:
        yield running


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


async def window_counts(redis: Redis, gate: RunningGate, instance_ids: list[str]) -> dict[str, int]:
    """What the instances' day windows hold (every day key, should the run straddle midnight)."""
    prefix = gate.settings.redis_key_prefix
    counts: dict[str, int] = {}
    for instance_id in instance_ids:
        keys = [key async for key in redis.scan_iter(f"{prefix}i:{instance_id}:d:*")]
        counts[instance_id] = sum(int(v or 0) for v in await redis.mget(keys)) if keys else 0
    return counts


async def approved_counts(gate: RunningGate, organization_id: str) -> dict[str, int]:
    async with gate.app.infra.sessions() as session:
        rows = await session.execute(
            select(intents.c.decided_by_instance_id, func.count())
            .where(
                intents.c.organization_id == organization_id,
                intents.c.status == IntentStatus.APPROVED.value,
            )
            .group_by(intents.c.decided_by_instance_id)
        )
        return dict(rows.all())


def submit(organization_id: str, n: int, **overrides: Any) -> SubmitIntent:
    fields: dict[str, Any] = dict(
        organization_id=organization_id,
        idempotency_key=f"k-{n}",
        target_kind=TargetKind.PHONE,
        target_value=f"5511970{n:06d}",
        type=MessageType.TEXT,
        purpose=Purpose.DISPATCH,
        origin=IntentOrigin.API,
        campaign_id="",
        payload=TextPayload("hello"),
    )
    return SubmitIntent(**{**fields, **overrides})


async def test_the_use_case_answers_refused_intents_alone_and_gives_their_slots_back(
    gate, jetstream, gate_root, redis
):
    """Straight into SubmitIntent, past any request validation: the database itself refuses these."""
    organization = f"org-{new_id()[-12:]}"
    instance_ids = await register_instances(jetstream, gate_root, gate, organization, INSTANCES)
    handler = gate.app.servicer._submit
    good = [submit(organization, n) for n in range(60)]
    bad = [
        submit(TOO_LONG_ORG, 1000),
        submit(organization, 1001, campaign_id="x\x00y"),  # approved, so it took a slot first
        submit(organization, 1002, idempotency_key="k\x00"),
        submit(organization, 1003, idempotency_key="k" * 129),  # refused by the domain, before the batch
    ]
    commands = [*good[:20], *bad[:2], *good[20:40], *bad[2:], *good[40:]]

    results = await asyncio.gather(*(handler(c) for c in commands), return_exceptions=True)

    outcome = dict(zip(map(id, commands), results, strict=True))
    answers = [outcome[id(c)] for c in good]
    assert [a for a in answers if not isinstance(a, CreationResult)] == []
    assert [type(outcome[id(c)]) for c in bad] == [RefusedByStore] * 3 + [InvalidArgument]
    approved = await approved_counts(gate, organization)
    assert sum(approved.values()) == sum(
        a.intent.status is IntentStatus.APPROVED for a in answers if isinstance(a, CreationResult)
    )
    assert await window_counts(redis, gate, instance_ids) == {i: approved.get(i, 0) for i in instance_ids}


def bad_requests(organization_id: str, round_: int) -> list[Any]:
    def request(n: int, **fields: Any) -> Any:
        return text_request(organization_id, f"55119{round_:02d}99{n:04d}", **fields)

    nul = {"campaign_id": "spring\x00sale"} if round_ % 2 else {"key": f"k-{round_}\x00"}
    return [
        text_request(TOO_LONG_ORG, f"55119{round_:02d}990000"),
        request(1, **nul),
        request(2, not_before=Timestamp(seconds=253402214400)),  # 9999-12-31
        request(3, not_before=Timestamp(seconds=253402300800)),  # past datetime's range
        request(4, expires_at=Timestamp(seconds=1, nanos=-1)),
    ]


async def test_valid_submits_fired_with_bad_ones_all_succeed_and_the_windows_hold_exactly_the_sends(
    gate, jetstream, gate_root, redis
):
    organization = f"org-{new_id()[-12:]}"
    instance_ids = await register_instances(jetstream, gate_root, gate, organization, INSTANCES)
    codes: Counter[str] = Counter()
    approved_answers = 0
    for round_ in range(ROUNDS):
        valid = [
            text_request(organization, f"55119{round_:02d}{n:06d}", key=f"r{round_}-{n}")
            for n in range(VALID_PER_ROUND)
        ]
        bad = bad_requests(organization, round_)
        calls = [*valid[:50], *bad, *valid[50:]]  # the bad ones amid the good ones

        results = await asyncio.gather(*(gate.stub.SubmitIntent(c) for c in calls), return_exceptions=True)

        answers = results[:50] + results[55:]
        failures = [a for a in answers if isinstance(a, BaseException)]
        assert failures == [], f"round {round_}: {failures[:3]}"
        approved_answers += sum(
            a.intent.status == gate_pb2.INTENT_STATUS_APPROVED
            for a in answers
            if isinstance(a, gate_pb2.SubmitIntentResponse)
        )
        for error in results[50:55]:
            assert isinstance(error, grpc.aio.AioRpcError), error
            codes[error.code().name] += 1
            assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (round_, error.details())
            assert field_violations(error), error.details()
            assert not any(word in (error.details() or "") for word in INTERNALS), error.details()

    assert codes == {"INVALID_ARGUMENT": ROUNDS * 5}
    approved = await approved_counts(gate, organization)
    assert sum(approved.values()) == approved_answers == ROUNDS * VALID_PER_ROUND
    # Every slot taken belongs to an approved intent: none was left behind by a call that failed.
    assert await window_counts(redis, gate, instance_ids) == {i: approved.get(i, 0) for i in instance_ids}
