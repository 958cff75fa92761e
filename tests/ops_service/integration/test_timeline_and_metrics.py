"""The timeline and the execution metrics as the running ops service builds them: one intent's life
published on every context's stream (with the facts around it that are not its own), real PostgreSQL and
JetStream, read over gRPC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from prometheus_client import REGISTRY

from libs.messaging import envelope
from libs.seedwork.ids import new_id
from libs.testing.jetstream import publish
from libs.testing.services import running_service
from libs.testing.waiting import eventually
from ops_service.bootstrap import build
from ops_service.config import OpsSettings
from ops_service.domain.funnel import STAGES
from ops_service.entrypoints.timeline_consumers import DURABLE_PREFIX, contexts
from tests.conftest import NATS_URL
from tests.ops_service.story import PHONE, Story, build_story
from whatlead.events.v1 import gate_events_pb2
from whatlead.executor.v1 import executor_pb2
from whatlead.gate.v1 import gate_pb2
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc


@pytest.fixture
async def ops(migrated_database, subject_root, jetstream):
    settings = OpsSettings(
        database_url=migrated_database("ops_service"), nats_url=NATS_URL, subject_root=subject_root
    )
    async with running_service(build, settings) as service:
        yield service


@pytest.fixture
def stub(ops) -> ops_pb2_grpc.OpsServiceStub:
    return ops_pb2_grpc.OpsServiceStub(ops.channel)


async def _published(js, root: str, story: Story, *, again: bool = False) -> None:
    for event in story.events:
        # A re-send with another message id: JetStream stores it again, as after its duplicate window.
        await publish(js, root, event, message_id=new_id() if again else None)


async def _drained(js, root: str) -> None:
    async def settled() -> bool:
        for context in contexts():
            info = await js.consumer_info(envelope.stream_name(root, context), DURABLE_PREFIX + context)
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    await eventually(settled, timeout=20)


def _funnel() -> dict[str, float]:
    return {
        stage: REGISTRY.get_sample_value("whatlead_funnel_total", {"stage": stage}) or 0.0 for stage in STAGES
    }


async def _timeline(stub, story: Story) -> list[ops_pb2.TimelineEntry]:
    response = await stub.GetIntentTimeline(
        ops_pb2.GetIntentTimelineRequest(organization_id=story.org, intent_id=story.intent)
    )
    return list(response.entries)


async def test_the_timeline_of_an_intent_is_every_fact_of_its_life_in_order_once(
    stub, jetstream, subject_root
):
    story = build_story(datetime.now(UTC) - timedelta(minutes=5))
    funnel_before = _funnel()
    await _published(jetstream, subject_root, story)
    await _drained(jetstream, subject_root)
    funnel = {stage: _funnel()[stage] - funnel_before[stage] for stage in STAGES}

    entries = await _timeline(stub, story)
    assert [entry.event_id for entry in entries] == story.timeline
    held, created, lifted, approved = entries[:4]
    # The campaign's pause in force when the intent came, and its end: they held it.
    assert [held.event_type, lifted.event_type] == ["whatlead.events.v1.ExecutionControlChanged"] * 2
    assert (
        created.event_type == "whatlead.events.v1.IntentCreated" and created.subject == "gate.intent.created"
    )
    assert created.actor == f"key:{story.key}" and created.summary.startswith(
        f"Submitted by API key {story.key}"
    )
    assert approved.aggregate_id == story.intent
    decided = gate_events_pb2.IntentApproved()
    assert approved.event.Unpack(decided) and decided.decision.chosen_instance_id == story.chosen
    assert [entry.summary.split(" ")[0] for entry in entries[-3:]] == ["DELIVERED", "READ", "Reply"]
    following = await stub.GetIntentTimeline(
        ops_pb2.GetIntentTimelineRequest(organization_id=story.org, intent_id=story.other_intent)
    )
    assert [e.summary for e in following.entries if e.summary.startswith("Reply")] == [
        f'Reply from {PHONE} on instance {story.chosen}: "and again"'
    ]

    # Everything again (a relay's re-send, a consumer's redelivery): not one entry more.
    await _published(jetstream, subject_root, story, again=True)
    await _drained(jetstream, subject_root)
    assert [entry.event_id for entry in await _timeline(stub, story)] == story.timeline
    # The sending funnel on /metrics, every organization's (the other's intent too): each fact once, the
    # re-sends not at all.
    assert funnel == {
        "submitted": 3, "approved": 2, "sent": 2, "delivered": 1, "read": 1, "replied": 3, "failed": 1,
    }  # fmt: skip
    assert {stage: _funnel()[stage] - funnel_before[stage] for stage in STAGES} == funnel

    # Metrics from the same facts, counted once.
    response = await stub.GetExecutionMetrics(ops_pb2.GetExecutionMetricsRequest(organization_id=story.org))
    metrics = response.metrics
    assert metrics.totals == ops_pb2.ExecutionCounts(
        submitted=2, approved=2, queued=1, sent=2, failed=1, retries=1, delivered=1, read=1
    )
    assert list(metrics.not_approved_by_reason) == [
        ops_pb2.ReasonCount(reason=gate_pb2.DECISION_REASON_CONTACT_MIN_INTERVAL, count=1)
    ]
    assert list(metrics.failures_by_class) == [
        ops_pb2.FailureCount(error_class=executor_pb2.ERROR_CLASS_PERMANENT, count=1)
    ]
    assert metrics.delivered_ratio == 0.5 and metrics.read_ratio == 0.5
    assert metrics.avg_time_to_send_ms == 4400  # 2.0 s and 6.8 s from creation to the provider
    assert 1000 <= metrics.p50_time_to_send_ms <= 5000 and 5000 <= metrics.p95_time_to_send_ms <= 10_000
    [chosen, refused] = metrics.instances
    assert (chosen.instance_id, chosen.share_of_sent, chosen.cooldowns_started) == (story.chosen, 1.0, 2)
    assert chosen.peak_rate_pressure == pytest.approx(0.4)
    assert (refused.instance_id, refused.counts.sent, refused.cooldowns_started) == (story.refused, 0, 1)

    instance = await stub.GetInstanceMetrics(
        ops_pb2.GetInstanceMetricsRequest(
            organization_id=story.org,
            instance_id=story.chosen,
            window=duration_pb2.Duration(seconds=3 * 3600),
        )
    )
    assert (
        instance.metrics.counts.approved,
        instance.metrics.counts.sent,
        instance.metrics.counts.failed,
    ) == (2, 2, 1)
    assert (
        sum(hour.sent for hour in instance.hours) == 2 and sum(hour.retries for hour in instance.hours) == 1
    )

    other = await stub.GetExecutionMetrics(
        ops_pb2.GetExecutionMetricsRequest(organization_id=story.other_org)
    )
    assert other.metrics.totals == ops_pb2.ExecutionCounts(submitted=1)


async def test_another_organizations_intent_is_as_unknown_as_one_that_never_was(
    stub, jetstream, subject_root
):
    story = build_story(datetime.now(UTC) - timedelta(minutes=5))
    await _published(jetstream, subject_root, story)
    await _drained(jetstream, subject_root)
    assert await _timeline(stub, story)

    errors = []
    for org, intent in ((story.other_org, story.intent), (story.org, new_id())):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetIntentTimeline(
                ops_pb2.GetIntentTimelineRequest(organization_id=org, intent_id=intent)
            )
        errors.append((raised.value.code(), (raised.value.details() or "").replace(intent, "?")))
    assert errors[0] == errors[1] and errors[0][0] == grpc.StatusCode.NOT_FOUND
