"""The kill-switch over gRPC: a pause leaves as an event at once, versions grow, timed pauses end by
themselves, resuming an active scope changes nothing; plans and the audit log beside it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import grpc
import nats
import pytest
from prometheus_client import REGISTRY

from libs.messaging import envelope
from libs.rpc.convert import to_timestamp
from libs.rpc.errors import field_violations
from libs.seedwork.access import Role
from libs.testing.jetstream import stored_events
from libs.testing.waiting import eventually
from tests.conftest import NATS_URL
from tests.ops_service.integration.conftest import as_key, as_service
from whatlead.events.v1 import ops_events_pb2
from whatlead.ops.v1 import ops_pb2

ADMIN_KEY = "0193ffff-0000-7000-8000-000000000006"


def pause_request(org: str, scope_id: str, **fields) -> ops_pb2.PauseExecutionRequest:
    return ops_pb2.PauseExecutionRequest(
        organization_id=org,
        scope=ops_pb2.CONTROL_SCOPE_INSTANCE,
        scope_id=scope_id,
        reason=ops_pb2.CONTROL_REASON_INCIDENT,
        **fields,
    )


async def test_a_pause_is_on_the_stream_well_within_a_second_of_the_answer(
    stub, subject_root, jetstream
) -> None:
    org = "org-fast"
    client = await nats.connect(NATS_URL)
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def on_event(msg) -> None:
        event = ops_events_pb2.ExecutionControlChanged.FromString(msg.data)
        if event.meta.organization_id == org:
            arrived.put_nowait(time.monotonic())

    subscription = await client.subscribe(
        envelope.full_subject(subject_root, "ops.control.changed"), cb=on_event
    )
    try:
        for n in range(5):
            await stub.PauseExecution(
                pause_request(org, f"inst-{n}"), metadata=as_key(org, Role.ADMIN, ADMIN_KEY)
            )
            answered = time.monotonic()
            published = await asyncio.wait_for(arrived.get(), timeout=5)
            assert published - answered < 0.5
    finally:
        await subscription.unsubscribe()
        await client.close()


async def test_pause_and_resume_answer_once_the_change_is_on_the_stream(
    stub, subject_root, jetstream
) -> None:
    org = "org-published"
    admin = as_key(org, Role.ADMIN, ADMIN_KEY)
    stream = envelope.stream_name(subject_root, "ops")
    subject = envelope.full_subject(subject_root, "ops.control.changed")

    async def last_published() -> tuple[str, int]:
        stored = await jetstream.get_last_msg(stream, subject)
        event = ops_events_pb2.ExecutionControlChanged.FromString(stored.data)
        return event.control.scope_id, event.control.status

    for n in range(5):
        await stub.PauseExecution(pause_request(org, f"inst-{n}"), metadata=admin)
        assert await last_published() == (f"inst-{n}", ops_pb2.CONTROL_STATUS_PAUSED)
        await stub.ResumeExecution(
            ops_pb2.ResumeExecutionRequest(
                organization_id=org, scope=ops_pb2.CONTROL_SCOPE_INSTANCE, scope_id=f"inst-{n}"
            ),
            metadata=admin,
        )
        assert await last_published() == (f"inst-{n}", ops_pb2.CONTROL_STATUS_ACTIVE)


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_pause_and_resume_are_versioned_events_with_their_actor(stub, subject_root, jetstream) -> None:
    org = "org-versions"
    admin = as_key(org, Role.ADMIN, ADMIN_KEY)
    pauses_before = counted("whatlead_ops_pauses_total", scope="INSTANCE")
    resumes_before = counted("whatlead_ops_resumes_total", scope="INSTANCE", reason="MANUAL")
    paused = await stub.PauseExecution(
        pause_request(org, "inst-1", note="flapping", actor="alice"), metadata=admin
    )
    resume = ops_pb2.ResumeExecutionRequest(
        organization_id=org, scope=ops_pb2.CONTROL_SCOPE_INSTANCE, scope_id="inst-1"
    )
    resumed = await stub.ResumeExecution(resume, metadata=admin)
    again = await stub.ResumeExecution(resume, metadata=admin)

    assert (paused.control.version, paused.control.status) == (1, ops_pb2.CONTROL_STATUS_PAUSED)
    assert paused.control.actor == f"alice (key:{ADMIN_KEY})"
    assert (resumed.control.version, resumed.control.status) == (2, ops_pb2.CONTROL_STATUS_ACTIVE)
    assert again.control.version == 2  # active already: nothing changed
    assert counted("whatlead_ops_pauses_total", scope="INSTANCE") == pauses_before + 1
    assert counted("whatlead_ops_resumes_total", scope="INSTANCE", reason="MANUAL") == resumes_before + 1

    async def both_published() -> bool:
        return len(await mine()) == 2

    async def mine() -> list[ops_events_pb2.ExecutionControlChanged]:
        events = await stored_events(
            jetstream, subject_root, "ops", subject_suffix="ops.control.changed", wait=0.2
        )
        return [
            e
            for e in events
            if isinstance(e, ops_events_pb2.ExecutionControlChanged) and e.meta.organization_id == org
        ]

    await eventually(both_published, timeout=5)
    await asyncio.sleep(0.3)  # a third (it must not exist) would be out by now
    events = await mine()
    assert [(e.control.version, e.previous_status) for e in events] == [
        (1, ops_pb2.CONTROL_STATUS_ACTIVE),
        (2, ops_pb2.CONTROL_STATUS_PAUSED),
    ]
    assert [e.meta.actor for e in events] == [f"key:{ADMIN_KEY}", f"key:{ADMIN_KEY}"]


async def test_a_timed_pause_ends_by_itself(stub) -> None:
    org = "org-timed"
    until = datetime.now(UTC) + timedelta(seconds=1)
    await stub.PauseExecution(
        pause_request(org, "inst-1", paused_until=to_timestamp(until)), metadata=as_key(org, Role.ADMIN)
    )

    async def ended() -> bool:
        listed = await stub.ListControls(
            ops_pb2.ListControlsRequest(organization_id=org), metadata=as_key(org, Role.MEMBER)
        )
        return [(c.status, c.reason, c.actor) for c in listed.controls] == [
            (ops_pb2.CONTROL_STATUS_ACTIVE, ops_pb2.CONTROL_REASON_EXPIRED, "")
        ]

    await eventually(ended, timeout=5)
    paused = await stub.ListPausedControls(
        ops_pb2.ListPausedControlsRequest(organization_id=org), metadata=as_service()
    )
    assert list(paused.controls) == []


async def test_the_internal_listing_of_paused_controls_spans_organizations(stub) -> None:
    for org in ("org-a", "org-b"):
        await stub.PauseExecution(
            ops_pb2.PauseExecutionRequest(organization_id=org, scope=ops_pb2.CONTROL_SCOPE_ORGANIZATION),
            metadata=as_key(org, Role.ADMIN),
        )
    listed = await stub.ListPausedControls(ops_pb2.ListPausedControlsRequest(), metadata=as_service())
    assert {("org-a", "org-a"), ("org-b", "org-b")} <= {
        (c.organization_id, c.scope_id) for c in listed.controls
    }


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (ops_pb2.PauseExecutionRequest(organization_id="org-1", scope_id="x"), "scope"),
        (
            ops_pb2.PauseExecutionRequest(organization_id="org-1", scope=ops_pb2.CONTROL_SCOPE_INSTANCE),
            "scope_id",
        ),
        (ops_pb2.PauseExecutionRequest(scope=ops_pb2.CONTROL_SCOPE_ORGANIZATION), "organization_id"),
        (
            pause_request("org-1", "x", paused_until=to_timestamp(datetime.now(UTC) - timedelta(minutes=1))),
            "paused_until",
        ),
        (pause_request("org-1", "x", note="x" * 1001), "note"),
        (
            ops_pb2.PauseExecutionRequest(
                organization_id="org-1",
                scope=ops_pb2.CONTROL_SCOPE_INSTANCE,
                scope_id="x",
                reason=5,  # type: ignore[arg-type]  # EXPIRED, which only ops itself gives
            ),
            "reason",
        ),
    ],
)
async def test_a_bad_pause_is_refused_with_the_field_named(stub, request_, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.PauseExecution(request_)  # the test channel acts as an owner of the named organization
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value)


async def test_plans_default_to_unlimited_and_every_change_is_audited(stub) -> None:
    org = "org-plans"
    owner = as_key(org, Role.OWNER, ADMIN_KEY)
    default = await stub.GetPlan(
        ops_pb2.GetPlanRequest(organization_id=org), metadata=as_key(org, Role.MEMBER)
    )
    assert (default.plan.name, default.plan.version, default.plan.limits.daily_message_cap) == (
        "default",
        0,
        0,
    )

    limits = ops_pb2.PlanLimits(daily_message_cap=100, monthly_message_cap=2000, max_instances=2)
    set_ = await stub.SetPlan(
        ops_pb2.SetPlanRequest(organization_id=org, name="starter", limits=limits, actor="olga"),
        metadata=owner,
    )
    await stub.PauseExecution(pause_request(org, "inst-1"), metadata=owner)
    read = await stub.GetPlan(ops_pb2.GetPlanRequest(organization_id=org), metadata=owner)
    listed = await stub.ListPlans(ops_pb2.ListPlansRequest(organization_id=org), metadata=as_service())

    assert set_.plan.version == read.plan.version == 1 and read.plan.limits == limits
    assert [p.name for p in listed.plans] == ["starter"]
    audit = await stub.ListAuditEntries(ops_pb2.ListAuditEntriesRequest(organization_id=org), metadata=owner)
    assert [(e.action, e.actor) for e in audit.entries] == [
        ("execution.paused", f"key:{ADMIN_KEY}"),
        ("plan.set", f"olga (key:{ADMIN_KEY})"),
    ]
    elsewhere = as_key("org-elsewhere", Role.OWNER)
    other = await stub.ListAuditEntries(
        ops_pb2.ListAuditEntriesRequest(organization_id="org-elsewhere"), metadata=elsewhere
    )
    assert list(other.entries) == []
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.SetPlan(
            ops_pb2.SetPlanRequest(organization_id=org, limits=ops_pb2.PlanLimits(daily_message_cap=-1)),
            metadata=owner,
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "limits.daily_message_cap" in field_violations(refused.value)


async def test_concurrent_first_changes_of_a_scope_and_a_plan_all_land_one_version_each(stub) -> None:
    org = "org-race"
    admin = as_key(org, Role.OWNER)
    pauses = await asyncio.gather(
        *(stub.PauseExecution(pause_request(org, "inst-1", note=f"n{n}"), metadata=admin) for n in range(5))
    )
    plans = await asyncio.gather(
        *(
            stub.SetPlan(
                ops_pb2.SetPlanRequest(organization_id=org, limits=ops_pb2.PlanLimits(daily_message_cap=n)),
                metadata=admin,
            )
            for n in range(5)
        )
    )
    assert sorted(p.control.version for p in pauses) == [1, 2, 3, 4, 5]
    assert sorted(p.plan.version for p in plans) == [1, 2, 3, 4, 5]
    listed = await stub.ListControls(ops_pb2.ListControlsRequest(organization_id=org), metadata=admin)
    assert [c.version for c in listed.controls] == [5]
