"""The Gate against real PostgreSQL, Redis and NATS JetStream, through its gRPC API."""

from __future__ import annotations

import asyncio
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
from tests.gate_service.integration.harness import (
    gate_events,
    register_instances,
    running_gate,
    text_request,
)
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import executor_events_pb2, reputation_events_pb2
from whatlead.executor.v1 import executor_pb2
from whatlead.gate.v1 import gate_pb2
from whatlead.reputation.v1 import reputation_pb2


@pytest.fixture(scope="module")
async def gate_root(subject_root, jetstream):
    """Streams of the gate tests' own: the events published here (reputation, executor) stay out of other
    tests' streams; removed at the end."""
    root = f"{subject_root}_gate"
    await ensure_streams(jetstream, root)
    yield root
    await delete_streams(jetstream, root)


@pytest.fixture(scope="module")
async def gate(migrated_database, gate_root, redis_prefix, jetstream, redis_client):
    async with running_gate(migrated_database("gate_service"), gate_root, redis_prefix) as running:
        yield running


def org() -> str:
    return f"org-{new_id()[-12:]}"


def phone(n: int) -> str:
    return f"55119{n:08d}"


async def test_fifty_concurrent_identical_submits_create_one_intent(gate, jetstream, gate_root):
    organization = org()
    await register_instances(jetstream, gate_root, gate, organization, 2)
    request = text_request(organization, "+55 11 90000-0001", key="same-key")
    responses = await asyncio.gather(*(gate.stub.SubmitIntent(request) for _ in range(50)))
    assert len({r.intent.id for r in responses}) == 1
    assert sum(not r.replayed for r in responses) == 1
    listed = await gate.stub.ListIntents(gate_pb2.ListIntentsRequest(organization_id=organization))
    assert len(listed.intents) == 1 and listed.intents[0].status == gate_pb2.INTENT_STATUS_APPROVED


async def test_the_same_key_with_another_body_is_already_exists(gate, jetstream, gate_root):
    organization = org()
    await register_instances(jetstream, gate_root, gate, organization, 1)
    await gate.stub.SubmitIntent(text_request(organization, phone(2), "one", key="k"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await gate.stub.SubmitIntent(text_request(organization, phone(2), "two", key="k"))
    assert error.value.code() is grpc.StatusCode.ALREADY_EXISTS


async def test_twenty_concurrent_decisions_for_five_remaining_slots_approve_exactly_five(
    gate, jetstream, gate_root
):
    organization = org()
    [instance_id] = await register_instances(jetstream, gate_root, gate, organization, 1)
    # The daily cap of this test's phase is 10: use 5 of them first.
    for n in range(5):
        first = await gate.stub.SubmitIntent(text_request(organization, phone(100 + n)))
        assert first.intent.status == gate_pb2.INTENT_STATUS_APPROVED
    responses = await asyncio.gather(
        *(gate.stub.SubmitIntent(text_request(organization, phone(200 + n))) for n in range(20))
    )
    approved = [r for r in responses if r.intent.status == gate_pb2.INTENT_STATUS_APPROVED]
    assert len(approved) == 5
    assert {r.intent.decided_by_instance_id for r in approved} == {instance_id}
    refused = [r for r in responses if r.intent.status != gate_pb2.INTENT_STATUS_APPROVED]
    # The only instance is out of its day: every other decision waits for the next day (or is dropped).
    assert all(
        r.decision.reason == gate_pb2.DECISION_REASON_RATE_LIMIT
        or r.intent.status == gate_pb2.INTENT_STATUS_DROPPED
        for r in refused
    )


async def test_the_approved_event_on_jetstream_carries_what_the_executor_needs(gate, jetstream, gate_root):
    organization = org()
    [instance_id] = await register_instances(jetstream, gate_root, gate, organization, 1)
    response = await gate.stub.SubmitIntent(text_request(organization, phone(3), "olá", campaign_id="camp-9"))
    intent_id = response.intent.id

    async def published() -> bool:
        return len(await gate_events(jetstream, gate_root, "gate.intent.approved", {intent_id})) == 1

    await eventually(published, timeout=10)
    [event] = await gate_events(jetstream, gate_root, "gate.intent.approved", {intent_id})
    assert event.meta.organization_id == organization and event.meta.correlation_id == intent_id
    assert event.target.value == phone(3) and event.target.kind == common_pb2.TARGET_KIND_PHONE
    assert event.type == common_pb2.MESSAGE_TYPE_TEXT and event.payload.text.text == "olá"
    assert event.instance_id == instance_id and event.provider == common_pb2.PROVIDER_SIMULATOR
    assert event.provider_instance_ref == f"sim-{instance_id[-8:]}"
    assert event.campaign_id == "camp-9" and event.HasField("expires_at")
    assert event.decision.outcome == gate_pb2.DECISION_OUTCOME_APPROVED
    assert event.decision.candidates[0].verdict == gate_pb2.VERDICT_ALLOW
    created = await gate_events(jetstream, gate_root, "gate.intent.created", {intent_id})
    assert len(created) == 1


async def test_a_reputation_event_marking_an_instance_unhealthy_stops_it_being_chosen(
    gate, jetstream, gate_root
):
    organization = org()
    sick, healthy = await register_instances(jetstream, gate_root, gate, organization, 2)
    await publish(
        jetstream,
        gate_root,
        reputation_events_pb2.ReputationEvaluated(
            meta=meta(organization, sick),
            reputation=reputation_pb2.InstanceReputation(
                instance_id=sick,
                organization_id=organization,
                score=15,
                health=reputation_pb2.HEALTH_STATUS_UNHEALTHY,
                phase=reputation_pb2.WARMUP_PHASE_STABLE,
                version=1,
            ),
        ),
    )

    async def applied() -> bool:
        return gate.app.projection.instances[sick].health is not None

    await eventually(applied, timeout=10)
    responses = [await gate.stub.SubmitIntent(text_request(organization, phone(400 + n))) for n in range(6)]
    assert {r.intent.decided_by_instance_id for r in responses} == {healthy}
    excluded = {e.reason: e.instances for e in responses[-1].decision.excluded}
    assert excluded == {gate_pb2.DECISION_REASON_INSTANCE_UNHEALTHY: 1}


async def test_executor_reports_mark_the_intent_sent_then_failed_if_refused_later(gate, jetstream, gate_root):
    organization = org()
    [instance_id] = await register_instances(jetstream, gate_root, gate, organization, 1)
    intent = (await gate.stub.SubmitIntent(text_request(organization, phone(5)))).intent
    job_id = new_id()
    await publish(
        jetstream,
        gate_root,
        executor_events_pb2.MessageSent(
            meta=meta(organization, job_id),
            job_id=job_id,
            intent_id=intent.id,
            instance_id=instance_id,
            provider=common_pb2.PROVIDER_SIMULATOR,
            provider_message_id="wamid-1",
            attempts=1,
            sent_at=to_timestamp(datetime.now(UTC)),
        ),
    )

    async def sent() -> bool:
        got = await gate.stub.GetIntent(
            gate_pb2.GetIntentRequest(organization_id=organization, intent_id=intent.id)
        )
        return got.intent.status == gate_pb2.INTENT_STATUS_SENT

    await eventually(sent, timeout=10)
    await eventually(lambda: _has(jetstream, gate_root, "gate.intent.sent", intent.id), timeout=10)

    # WhatsApp refuses it afterwards (a 463 in an ERROR ack): the same job reports the failure.
    await publish(
        jetstream,
        gate_root,
        executor_events_pb2.MessageFailed(
            meta=meta(organization, job_id),
            job_id=job_id,
            intent_id=intent.id,
            instance_id=instance_id,
            provider=common_pb2.PROVIDER_SIMULATOR,
            error=executor_pb2.JobError(
                error_class=executor_pb2.ERROR_CLASS_RESTRICTED,
                code="463",
                restriction_kind=common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK,
            ),
            attempts=1,
            failed_at=to_timestamp(datetime.now(UTC)),
        ),
    )

    async def failed() -> bool:
        got = await gate.stub.GetIntent(
            gate_pb2.GetIntentRequest(organization_id=organization, intent_id=intent.id)
        )
        return got.intent.status == gate_pb2.INTENT_STATUS_FAILED

    await eventually(failed, timeout=10)
    await eventually(lambda: _has(jetstream, gate_root, "gate.intent.failed", intent.id), timeout=10)


async def _has(js, gate_root, suffix, intent_id) -> bool:
    return len(await gate_events(js, gate_root, suffix, {intent_id})) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"payload": common_pb2.MessagePayload(text=common_pb2.TextPayload(text=""))}, "payload.text.text"),
        ({"type": 99}, "type"),
        (
            {
                "payload": common_pb2.MessagePayload(
                    audio=common_pb2.AudioPayload(audio_url="https://a/b.ogg")
                )
            },
            "payload",
        ),
        ({"target": common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value="12ab")}, "target.value"),
        ({"expires_at": to_timestamp(datetime.now(UTC) - timedelta(minutes=1))}, "expires_at"),
    ],
)
async def test_bad_input_is_invalid_argument_with_field_violations_and_creates_nothing(gate, change, field):
    organization = org()
    request = text_request(organization, phone(6))
    for name, value in change.items():
        if isinstance(value, int):
            setattr(request, name, value)
        else:
            getattr(request, name).CopyFrom(value)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await gate.stub.SubmitIntent(request)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    listed = await gate.stub.ListIntents(gate_pb2.ListIntentsRequest(organization_id=organization))
    assert list(listed.intents) == []


async def test_every_call_is_scoped_to_one_organization(gate, jetstream, gate_root):
    mine, theirs = org(), org()
    await register_instances(jetstream, gate_root, gate, mine, 1)
    intent = (await gate.stub.SubmitIntent(text_request(mine, phone(7)))).intent
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await gate.stub.GetIntent(gate_pb2.GetIntentRequest(organization_id=theirs, intent_id=intent.id))
    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await gate.stub.DecideIntent(
            gate_pb2.DecideIntentRequest(organization_id=theirs, intent_id=intent.id)
        )
    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    assert (
        list((await gate.stub.ListIntents(gate_pb2.ListIntentsRequest(organization_id=theirs))).intents) == []
    )
    # A submit without instances in the other organization does not use mine: it waits for one of its own
    # (the projection grace), then is blocked.
    other = await gate.stub.SubmitIntent(text_request(theirs, phone(7)))
    assert other.intent.status == gate_pb2.INTENT_STATUS_QUEUED and not other.intent.decided_by_instance_id
    assert other.intent.status_reason == gate_pb2.DECISION_REASON_NO_ELIGIBLE_INSTANCE


async def test_list_filters_and_cursor_pagination(gate, jetstream, gate_root):
    organization = org()
    [instance_id] = await register_instances(jetstream, gate_root, gate, organization, 1)
    for n in range(5):
        await gate.stub.SubmitIntent(
            text_request(organization, phone(800 + n), campaign_id="c1" if n % 2 else "")
        )
    created = await gate.stub.CreateIntent(
        gate_pb2.CreateIntentRequest(
            organization_id=organization,
            target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value=phone(900)),
            type=common_pb2.MESSAGE_TYPE_TEXT,
            purpose=common_pb2.PURPOSE_DISPATCH,
            payload=common_pb2.MessagePayload(text=common_pb2.TextPayload(text="later")),
        )
    )
    assert created.intent.status == gate_pb2.INTENT_STATUS_PENDING
    seen, token = [], ""
    while True:
        page = await gate.stub.ListIntents(
            gate_pb2.ListIntentsRequest(organization_id=organization, page_size=2, page_token=token)
        )
        seen += [i.id for i in page.intents]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 6 and seen == sorted(seen)

    async def count(**filters) -> int:
        page = await gate.stub.ListIntents(
            gate_pb2.ListIntentsRequest(organization_id=organization, **filters)
        )
        return len(page.intents)

    assert await count(status=gate_pb2.INTENT_STATUS_PENDING) == 1
    assert await count(campaign_id="c1") == 2
    assert await count(instance_id=instance_id) == 5
    assert (
        await count(target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value="+" + phone(801))) == 1
    )
    decided = await gate.stub.DecideIntent(
        gate_pb2.DecideIntentRequest(organization_id=organization, intent_id=created.intent.id)
    )
    assert decided.intent.status == gate_pb2.INTENT_STATUS_APPROVED and decided.decision.attempt == 1
    got = await gate.stub.GetIntent(
        gate_pb2.GetIntentRequest(organization_id=organization, intent_id=created.intent.id)
    )
    assert got.decision.chosen_instance_id == instance_id


async def test_the_scheduler_approves_a_queued_intent_when_its_window_opens(
    migrated_database, gate_root, redis_prefix, jetstream, redis_client
):
    clock = FakeClock(datetime.now(UTC))
    async with running_gate(migrated_database("gate_service"), gate_root, redis_prefix, clock=clock) as gate:
        organization = org()
        [instance_id] = await register_instances(jetstream, gate_root, gate, organization, 1)
        await publish(
            jetstream,
            gate_root,
            reputation_events_pb2.CooldownStarted(
                meta=meta(organization, instance_id),
                instance_id=instance_id,
                cooldown_until=to_timestamp(clock.now() + timedelta(minutes=10)),
                reason=reputation_pb2.COOLDOWN_REASON_REACHOUT_TIMELOCK,
            ),
        )
        await eventually(lambda: _cooling(gate, instance_id), timeout=10)
        queued = await gate.stub.SubmitIntent(text_request(organization, phone(10)))
        assert queued.intent.status == gate_pb2.INTENT_STATUS_QUEUED
        assert queued.intent.status_reason == gate_pb2.DECISION_REASON_COOLDOWN_ACTIVE
        clock.advance(minutes=10, seconds=1)  # the cooldown is over: the scheduler's next pass approves it

        async def approved() -> bool:
            got = await gate.stub.GetIntent(
                gate_pb2.GetIntentRequest(organization_id=organization, intent_id=queued.intent.id)
            )
            return got.intent.status == gate_pb2.INTENT_STATUS_APPROVED and got.decision.attempt == 2

        await eventually(approved, timeout=10)


async def _cooling(gate, instance_id) -> bool:
    return gate.app.projection.instances[instance_id].cooldown_until is not None


async def test_a_restarted_gate_knows_its_projections_before_any_event(
    gate, jetstream, gate_root, redis_prefix
):
    organization = org()
    [instance_id] = await register_instances(jetstream, gate_root, gate, organization, 1)
    async with running_gate(gate.settings.database_url, gate_root, redis_prefix) as restarted:
        assert instance_id in restarted.app.projection.instances  # loaded from the gate's own database
        response = await restarted.stub.SubmitIntent(text_request(organization, phone(11)))
        assert response.intent.decided_by_instance_id == instance_id


async def test_ops_events_pause_an_organization_and_set_its_plan(gate, jetstream, gate_root):
    from whatlead.events.v1 import ops_events_pb2
    from whatlead.ops.v1 import ops_pb2

    def clock() -> datetime:
        return datetime.now(UTC)

    paused, planned = org(), org()
    await register_instances(jetstream, gate_root, gate, paused, 1)
    await register_instances(jetstream, gate_root, gate, planned, 1)
    await publish(
        jetstream,
        gate_root,
        ops_events_pb2.ExecutionControlChanged(
            meta=meta(paused, paused),
            control=ops_pb2.ExecutionControl(
                organization_id=paused,
                scope=ops_pb2.CONTROL_SCOPE_ORGANIZATION,
                scope_id=paused,
                status=ops_pb2.CONTROL_STATUS_PAUSED,
                reason=ops_pb2.CONTROL_REASON_INCIDENT,
                version=1,
            ),
        ),
    )
    await publish(
        jetstream,
        gate_root,
        ops_events_pb2.PlanChanged(
            meta=meta(planned, planned),
            plan=ops_pb2.Plan(
                organization_id=planned, limits=ops_pb2.PlanLimits(daily_message_cap=1), version=1
            ),
        ),
    )

    async def applied() -> bool:
        projection = gate.app.projection
        return (
            projection.plan(planned) is not None and projection.paused_scope(paused, "", clock()) is not None
        )

    await eventually(applied, timeout=10)
    blocked = await gate.stub.SubmitIntent(text_request(paused, phone(12)))
    assert blocked.intent.status_reason == gate_pb2.DECISION_REASON_OPS_PAUSED
    first = await gate.stub.SubmitIntent(text_request(planned, phone(13)))
    second = await gate.stub.SubmitIntent(text_request(planned, phone(14)))
    assert first.intent.status == gate_pb2.INTENT_STATUS_APPROVED
    assert second.intent.status_reason == gate_pb2.DECISION_REASON_PLAN_LIMIT
