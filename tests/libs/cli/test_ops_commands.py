"""The ops commands against a fake OpsService: the requests they send (with the caller's key as bearer
metadata, the organization left to the server unless --org names one) and what they print."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration

from libs.rpc.convert import to_timestamp
from tests.libs.cli.conftest import API_KEY
from whatlead.gate.v1 import gate_pb2
from whatlead.ops.v1 import ops_pb2

INSTANCE = "0193a1b2-0000-7000-8000-000000000001"
INTENT = "0193a1b2-0000-7000-8000-0000000000aa"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def api_key(ops, monkeypatch):
    monkeypatch.setenv("WHATLEAD_API_KEY", API_KEY)


def control(**fields) -> ops_pb2.ExecutionControl:
    return ops_pb2.ExecutionControl(
        **{"organization_id": "org-1", "actor": "key:k-1", "updated_at": to_timestamp(T0), **fields}
    )


async def test_pause_sends_the_scope_reason_note_and_end_with_the_bearer_key(ops, whatlead):
    ops.answer(
        "PauseExecution",
        ops_pb2.PauseExecutionResponse(
            control=control(
                scope=ops_pb2.CONTROL_SCOPE_INSTANCE,
                scope_id=INSTANCE,
                status=ops_pb2.CONTROL_STATUS_PAUSED,
                reason=ops_pb2.CONTROL_REASON_PROVIDER_OUTAGE,
                note="waha down",
                paused_until=to_timestamp(T0 + timedelta(hours=2)),
            )
        ),
    )
    before = datetime.now(UTC)

    code, out, err = await whatlead(
        "pause", "instance", INSTANCE, "--reason", "provider_outage", "--note", "waha down", "--until", "2h"
    )

    assert code == 0, err
    [call] = ops.calls
    assert call.metadata["authorization"] == f"Bearer {API_KEY}"
    request = call.request
    assert (request.organization_id, request.scope, request.scope_id) == (
        "",
        ops_pb2.CONTROL_SCOPE_INSTANCE,
        INSTANCE,
    )
    assert request.reason == ops_pb2.CONTROL_REASON_PROVIDER_OUTAGE and request.note == "waha down"
    until = request.paused_until.ToDatetime(tzinfo=UTC)
    assert before + timedelta(hours=2) <= until <= datetime.now(UTC) + timedelta(hours=2)
    assert out.split() == [
        "PAUSED", "INSTANCE", INSTANCE, "until", "2026-03-02", "12:00:00", "PROVIDER_OUTAGE",
        "by", "key:k-1", "at", "2026-03-02", "10:00:00", "waha", "down",
    ]  # fmt: skip


async def test_pausing_the_organization_needs_no_id_and_org_names_one_explicitly(ops, whatlead):
    code, _, err = await whatlead("--org", "org-9", "pause", "organization", "--until", "2026-03-02T12:00:00")

    assert code == 0, err
    [request] = ops.requests("PauseExecution")
    assert (request.organization_id, request.scope, request.scope_id) == (
        "org-9",
        ops_pb2.CONTROL_SCOPE_ORGANIZATION,
        "",
    )
    assert request.paused_until.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert request.reason == ops_pb2.CONTROL_REASON_MANUAL


async def test_a_campaign_or_instance_without_its_id_is_refused_before_any_call(ops, whatlead):
    code, _, err = await whatlead("pause", "campaign")

    assert code == 1 and "give the campaign id" in err
    assert ops.calls == []


async def test_resume_sends_the_scope_and_prints_the_active_control(ops, whatlead):
    ops.answer(
        "ResumeExecution",
        ops_pb2.ResumeExecutionResponse(
            control=control(
                scope=ops_pb2.CONTROL_SCOPE_CAMPAIGN,
                scope_id="black-friday",
                status=ops_pb2.CONTROL_STATUS_ACTIVE,
            )
        ),
    )

    code, out, err = await whatlead("resume", "campaign", "black-friday", "--note", "fixed", "--actor", "ana")

    assert code == 0, err
    [request] = ops.requests("ResumeExecution")
    assert (request.scope, request.scope_id, request.note, request.actor) == (
        ops_pb2.CONTROL_SCOPE_CAMPAIGN,
        "black-friday",
        "fixed",
        "ana",
    )
    assert out.startswith("ACTIVE  CAMPAIGN     black-friday")


async def test_controls_filters_by_status_and_follows_every_page(ops, whatlead):
    ops.answer(
        "ListControls",
        ops_pb2.ListControlsResponse(
            controls=[control(scope=ops_pb2.CONTROL_SCOPE_INSTANCE, scope_id=INSTANCE, status=2)],
            next_page_token="p2",
        ),
        ops_pb2.ListControlsResponse(
            controls=[control(scope=ops_pb2.CONTROL_SCOPE_CAMPAIGN, scope_id="c-1", status=2)]
        ),
    )

    code, out, err = await whatlead("controls", "--status", "paused")

    assert code == 0, err
    first, second = ops.requests("ListControls")
    assert first.status == ops_pb2.CONTROL_STATUS_PAUSED and first.page_token == ""
    assert second.page_token == "p2" and second.status == ops_pb2.CONTROL_STATUS_PAUSED
    assert [line.split()[:3] for line in out.splitlines()] == [
        ["PAUSED", "INSTANCE", INSTANCE],
        ["PAUSED", "CAMPAIGN", "c-1"],
    ]


def entry(
    seconds: float, subject: str, summary: str, actor: str = "", event_type: str = ""
) -> ops_pb2.TimelineEntry:
    return ops_pb2.TimelineEntry(
        occurred_at=to_timestamp(T0 + timedelta(seconds=seconds)),
        subject=subject,
        summary=summary,
        actor=actor,
        event_type=event_type,
        event=AnyMessage(),
    )


async def test_timeline_tells_the_intents_story_one_aligned_line_per_event(ops, whatlead):
    ops.answer(
        "GetIntentTimeline",
        ops_pb2.GetIntentTimelineResponse(
            entries=[
                entry(0, "gate.intent.created", "created: TEXT to 5511988887777", actor="key:k-1"),
                entry(0.004, "gate.intent.approved", "APPROVED through instance 0193… (score 0.82)"),
                entry(1.25, "executor.message.sent", "", event_type="whatlead.events.v1.MessageSent"),
            ]
        ),
    )

    code, out, err = await whatlead("timeline", INTENT)

    assert code == 0, err
    [request] = ops.requests("GetIntentTimeline")
    assert request.intent_id == INTENT and request.organization_id == ""
    lines = out.splitlines()
    assert lines == [
        "2026-03-02 10:00:00.000  gate      created: TEXT to 5511988887777                key:k-1",
        "2026-03-02 10:00:00.004  gate      APPROVED through instance 0193… (score 0.82)  system",
        "2026-03-02 10:00:01.250  executor  MessageSent                                   system",
    ]


async def test_a_timeline_with_nothing_recorded_says_so_and_fails(ops, whatlead):
    code, out, _ = await whatlead("timeline", INTENT)

    assert code == 1 and out == f"nothing recorded for intent {INTENT} yet\n"


async def test_metrics_asks_for_the_window_and_prints_counts_times_reasons_and_instances(ops, whatlead):
    ops.answer(
        "GetExecutionMetrics",
        ops_pb2.GetExecutionMetricsResponse(
            metrics=ops_pb2.ExecutionMetrics(
                totals=ops_pb2.ExecutionCounts(submitted=10, approved=8, blocked=2, sent=7, failed=1),
                avg_time_to_send_ms=1250,
                p95_time_to_send_ms=3000,
                not_approved_by_reason=[
                    ops_pb2.ReasonCount(reason=gate_pb2.DECISION_REASON_OPS_PAUSED, count=2)
                ],
                instances=[
                    ops_pb2.InstanceMetrics(
                        instance_id=INSTANCE,
                        counts=ops_pb2.ExecutionCounts(sent=7, failed=1),
                        avg_time_to_send_ms=1250,
                        p95_time_to_send_ms=3000,
                        share_of_sent=1.0,
                    )
                ],
            ),
            window_start=to_timestamp(T0 - timedelta(minutes=30)),
            window_end=to_timestamp(T0),
        ),
    )

    code, out, err = await whatlead("metrics", "--window", "30m")

    assert code == 0, err
    [request] = ops.requests("GetExecutionMetrics")
    assert request.window == Duration(seconds=1800)
    assert "2026-03-02 09:30:00 .. 2026-03-02 10:00:00 UTC" in out
    assert "submitted 10  approved 8  queued 0  blocked 2  dropped 0  sent 7  failed 1" in out
    assert "time to send: avg 1.25s  p95 3.00s" in out
    assert "not approved: OPS_PAUSED 2" in out
    assert f"{INSTANCE}       7       1  100.0%" in out


async def test_metrics_of_one_instance(ops, whatlead):
    code, out, err = await whatlead("metrics", "--instance", INSTANCE, "--window", "1d")

    assert code == 0, err
    assert ops.requests("GetExecutionMetrics") == []
    [request] = ops.requests("GetInstanceMetrics")
    assert request.instance_id == INSTANCE and request.window == Duration(seconds=86400)
    assert "cooldowns started 0" in out


async def test_a_bad_window_is_refused_before_any_call(ops, whatlead):
    code, _, err = await whatlead("metrics", "--window", "soon")

    assert code == 1 and "bad duration 'soon'" in err and ops.calls == []


async def test_keys_create_prints_the_secret_once_with_a_warning(ops, whatlead):
    secret = "wl_newk1234_" + "s" * 43
    ops.answer(
        "CreateApiKey",
        ops_pb2.CreateApiKeyResponse(
            api_key=ops_pb2.ApiKey(
                id="k-2",
                name="ci",
                role=ops_pb2.MEMBER_ROLE_MEMBER,
                prefix="wl_newk1234",
                created_by="key:k-1",
            ),
            secret=secret,
        ),
    )

    code, out, err = await whatlead("keys", "create", "--name", "ci", "--role", "member")

    assert code == 0, err
    [request] = ops.requests("CreateApiKey")
    assert (request.name, request.role) == ("ci", ops_pb2.MEMBER_ROLE_MEMBER)
    assert out.count(secret) == 1 and out.splitlines()[1] == secret
    assert "shown only this once" in err and secret not in err


async def test_keys_list_and_revoke(ops, whatlead):
    ops.answer(
        "ListApiKeys",
        ops_pb2.ListApiKeysResponse(
            api_keys=[
                ops_pb2.ApiKey(id="k-1", name="owner", role=ops_pb2.MEMBER_ROLE_OWNER, prefix="wl_abcd1234"),
                ops_pb2.ApiKey(
                    id="k-2", name="ci", role=ops_pb2.MEMBER_ROLE_MEMBER, revoked_at=to_timestamp(T0)
                ),
            ]
        ),
    )
    code, out, _ = await whatlead("keys", "list")
    assert code == 0
    owner, ci = out.splitlines()
    assert owner.split()[:4] == ["k-1", "wl_abcd1234", "OWNER", "owner"] and owner.endswith("active")
    assert ci.endswith("revoked 2026-03-02 10:00:00")

    code, _, _ = await whatlead("keys", "revoke", "k-2")
    assert code == 0 and ops.requests("RevokeApiKey")[0].api_key_id == "k-2"


async def test_an_unknown_role_is_refused_with_the_choices_before_any_call(ops, whatlead):
    code, _, err = await whatlead("keys", "create", "--name", "x", "--role", "root")

    assert code == 1 and "choose from owner, admin, member" in err and ops.calls == []


async def test_members_lists_by_default_and_adds_with_a_role(ops, whatlead):
    ops.answer(
        "ListMembers",
        ops_pb2.ListMembersResponse(
            members=[
                ops_pb2.Member(user_id="ana", role=ops_pb2.MEMBER_ROLE_OWNER, created_at=to_timestamp(T0))
            ]
        ),
    )
    code, out, _ = await whatlead("members")
    assert code == 0 and out.split() == ["ana", "OWNER", "since", "2026-03-02", "10:00:00"]

    code, _, err = await whatlead("members", "add", "bob", "--role", "admin")
    assert code == 0, err
    [request] = ops.requests("AddMember")
    assert (request.user_id, request.role) == ("bob", ops_pb2.MEMBER_ROLE_ADMIN)


async def test_plan_set_changes_only_the_limits_given(ops, whatlead):
    current = ops_pb2.Plan(
        name="starter",
        limits=ops_pb2.PlanLimits(daily_message_cap=1000, monthly_message_cap=20000, max_instances=3),
        version=4,
    )
    changed = ops_pb2.Plan(
        name="starter",
        limits=ops_pb2.PlanLimits(daily_message_cap=1000, monthly_message_cap=20000, max_instances=5),
        version=5,
    )
    ops.answer("GetPlan", ops_pb2.GetPlanResponse(plan=current))
    ops.answer("SetPlan", ops_pb2.SetPlanResponse(plan=changed))

    code, out, err = await whatlead("plan", "set", "--max-instances", "5")

    assert code == 0, err
    [request] = ops.requests("SetPlan")
    assert request.name == "starter"
    assert request.limits == ops_pb2.PlanLimits(
        daily_message_cap=1000, monthly_message_cap=20000, max_instances=5
    )
    assert "max instances  5" in out and "version 5" in out


async def test_plan_shows_zero_caps_as_unlimited_and_set_with_nothing_is_refused(ops, whatlead):
    ops.answer("GetPlan", ops_pb2.GetPlanResponse(plan=ops_pb2.Plan(name="free")))
    code, out, _ = await whatlead("plan")
    assert code == 0 and "daily cap      unlimited" in out and "max instances  unlimited" in out

    code, _, err = await whatlead("plan", "set")
    assert code == 1 and "nothing to change" in err and ops.requests("SetPlan") == []


async def test_audit_prints_operator_actions_aligned(ops, whatlead):
    ops.answer(
        "ListAuditEntries",
        ops_pb2.ListAuditEntriesResponse(
            entries=[
                ops_pb2.AuditEntry(
                    actor="ana (key:k-1)",
                    action="execution.paused",
                    target=f"instance/{INSTANCE}",
                    summary="paused: provider outage",
                    occurred_at=to_timestamp(T0),
                ),
                ops_pb2.AuditEntry(
                    actor="service", action="plan.set", target="plan/org-1", summary="max 3 instances"
                ),
            ]
        ),
    )

    code, out, _ = await whatlead("audit")

    assert code == 0
    paused, plan = out.splitlines()
    assert paused.index("execution.paused") == plan.index("plan.set")
    assert paused.startswith("2026-03-02 10:00:00  ana (key:k-1)  execution.paused")


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, "the API key was not accepted"),
        (grpc.StatusCode.PERMISSION_DENIED, "the API key's role does not allow this"),
    ],
)
async def test_a_refused_key_is_one_clear_line_naming_where_the_key_came_from(ops, whatlead, code, meaning):
    ops.refusal = (code, "refused by the test")

    exit_code, out, err = await whatlead("controls")

    assert exit_code == 64 + code.value[0] and out == ""  # 80 UNAUTHENTICATED, 71 PERMISSION_DENIED
    assert err == f"error: {code.name}: refused by the test ({meaning}; key from WHATLEAD_API_KEY)\n"
    assert API_KEY not in err
