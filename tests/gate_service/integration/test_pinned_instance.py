"""Pinned intents and the self-target rule through the Gate's gRPC API, with real PostgreSQL, Redis and
JetStream: the pin is stored with the intent, so the scheduler's re-decision keeps it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from libs.messaging.streams import delete_streams, ensure_streams
from libs.rpc.convert import to_timestamp
from libs.rpc.errors import field_violations
from libs.seedwork.clock import FakeClock
from libs.seedwork.ids import new_id
from libs.testing.jetstream import meta, publish
from libs.testing.waiting import eventually
from tests.gate_service.integration.harness import register_instances, running_gate, text_request
from whatlead.events.v1 import reputation_events_pb2
from whatlead.gate.v1 import gate_pb2
from whatlead.reputation.v1 import reputation_pb2


@pytest.fixture(scope="module")
async def pin_root(subject_root, jetstream):
    root = f"{subject_root}_pin"
    await ensure_streams(jetstream, root)
    yield root
    await delete_streams(jetstream, root)


@pytest.fixture(scope="module")
async def gate(migrated_database, pin_root, redis_prefix, jetstream, redis_client):
    async with running_gate(
        migrated_database("gate_service"), pin_root, redis_prefix, projection_grace_seconds=0
    ) as running:
        yield running


def org() -> str:
    return f"org-{new_id()[-12:]}"


async def test_a_pinned_submit_is_approved_through_that_instance_only(gate, jetstream, pin_root):
    organization = org()
    first, second = await register_instances(jetstream, pin_root, gate, organization, 2)
    for pinned in (first, second, first):
        answer = await gate.stub.SubmitIntent(
            text_request(organization, "5511933330001", key=new_id(), instance_id=pinned)
        )
        assert answer.intent.status == gate_pb2.INTENT_STATUS_APPROVED
        assert answer.intent.decided_by_instance_id == pinned
        assert answer.intent.pinned_instance_id == pinned
        assert answer.decision.pinned_instance_id == pinned
        assert [c.instance_id for c in answer.decision.candidates] == [pinned]


async def test_an_instance_of_another_organization_is_refused_like_an_unknown_one(gate, jetstream, pin_root):
    mine, theirs = org(), org()
    await register_instances(jetstream, pin_root, gate, mine, 1)
    [their_instance] = await register_instances(jetstream, pin_root, gate, theirs, 1)
    answers = [
        await gate.stub.SubmitIntent(text_request(mine, "5511933330002", instance_id=pinned))
        for pinned in (their_instance, new_id())
    ]
    for answer in answers:
        assert answer.intent.status == gate_pb2.INTENT_STATUS_BLOCKED
        assert answer.intent.status_reason == gate_pb2.DECISION_REASON_NO_ELIGIBLE_INSTANCE
        assert list(answer.decision.candidates) == [] and list(answer.decision.excluded) == []


async def test_a_number_never_sends_to_its_own_phone(gate, jetstream, pin_root):
    organization = org()
    own, other = await register_instances(
        jetstream, pin_root, gate, organization, 2, phones=("5511944440001", "5511944440002")
    )
    answer = await gate.stub.SubmitIntent(text_request(organization, "+55 11 94444-0001"))
    assert answer.intent.status == gate_pb2.INTENT_STATUS_APPROVED
    assert answer.intent.decided_by_instance_id == other
    refused = {c.instance_id: c for c in answer.decision.candidates}[own]
    assert (refused.verdict, refused.reason) == (gate_pb2.VERDICT_FINAL, gate_pb2.DECISION_REASON_SELF_TARGET)
    pinned = await gate.stub.SubmitIntent(text_request(organization, "5511944440001", instance_id=own))
    assert pinned.intent.status == gate_pb2.INTENT_STATUS_BLOCKED
    assert pinned.intent.status_reason == gate_pb2.DECISION_REASON_SELF_TARGET


async def test_an_instance_id_that_is_not_a_uuid_is_invalid_argument(gate):
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await gate.stub.SubmitIntent(text_request(org(), "5511933330003", instance_id="sim-1"))
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "instance_id" in field_violations(error.value)


async def test_a_pinned_intent_waits_for_its_cooling_instance_and_the_scheduler_keeps_the_pin(
    migrated_database, pin_root, redis_prefix, jetstream, redis_client
):
    clock = FakeClock(datetime.now(UTC))
    async with running_gate(migrated_database("gate_service"), pin_root, redis_prefix, clock=clock) as gate:
        organization = org()
        cooling, free = await register_instances(jetstream, pin_root, gate, organization, 2)
        until = clock.now() + timedelta(minutes=10)
        await publish(
            jetstream,
            pin_root,
            reputation_events_pb2.CooldownStarted(
                meta=meta(organization, cooling),
                instance_id=cooling,
                cooldown_until=to_timestamp(until),
                reason=reputation_pb2.COOLDOWN_REASON_REACHOUT_TIMELOCK,
            ),
        )

        async def cooled() -> bool:
            return gate.app.projection.instances[cooling].cooldown_until is not None

        await eventually(cooled, timeout=10)
        queued = await gate.stub.SubmitIntent(
            text_request(organization, "5511933330004", instance_id=cooling)
        )
        assert queued.intent.status == gate_pb2.INTENT_STATUS_QUEUED
        assert queued.intent.status_reason == gate_pb2.DECISION_REASON_COOLDOWN_ACTIVE
        assert queued.intent.queued_until.ToDatetime(UTC) == until
        assert free not in {c.instance_id for c in queued.decision.candidates}
        clock.advance(minutes=10, seconds=1)  # the scheduler reads the stored intent and decides it again

        request = gate_pb2.GetIntentRequest(organization_id=organization, intent_id=queued.intent.id)

        async def approved() -> bool:
            got = await gate.stub.GetIntent(request)
            return got.intent.status == gate_pb2.INTENT_STATUS_APPROVED

        await eventually(approved, timeout=10)
        got = await gate.stub.GetIntent(request)
        assert got.intent.decided_by_instance_id == cooling and got.decision.attempt == 2
        assert got.decision.pinned_instance_id == cooling
