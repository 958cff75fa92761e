"""Every command for scripts: with --output json it prints proto JSON (the protos' field names), one document
per line (per result, per listed item, per streamed message); a server's refusal exits with 64 + its gRPC
status code and one line on stderr naming the code. Against fake services on free ports."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.message import Message

from libs.cli.main import parser
from libs.rpc.convert import to_timestamp
from tests.libs.cli.conftest import API_KEY
from tests.libs.cli.fake_services import FakeService, Script
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import gate_events_pb2
from whatlead.executor.v1 import executor_pb2
from whatlead.gate.v1 import gate_pb2
from whatlead.ops.v1 import ops_pb2
from whatlead.reputation.v1 import reputation_pb2

INSTANCE_ID = "0193a1b2-0000-7000-8000-000000000001"
INTENT_ID = "0193a1b2-0000-7000-8000-0000000000aa"
T0 = to_timestamp(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
INSTANCE = reputation_pb2.Instance(
    id=INSTANCE_ID,
    provider=common_pb2.PROVIDER_SIMULATOR,
    provider_instance_ref="sales-1",
    phone="5511987654321",
    connection_state=common_pb2.CONNECTION_STATE_CONNECTED,
)
OTHER = reputation_pb2.Instance(id="0193a1b2-0000-7000-8000-000000000002", provider_instance_ref="sales-2")
INTENT = gate_pb2.MessageIntent(id=INTENT_ID, status=gate_pb2.INTENT_STATUS_APPROVED, created_at=T0)
SECOND_INTENT = gate_pb2.MessageIntent(id="0193a1b2-0000-7000-8000-0000000000bb")
CONTROL = ops_pb2.ExecutionControl(
    scope=ops_pb2.CONTROL_SCOPE_ORGANIZATION, status=ops_pb2.CONTROL_STATUS_PAUSED, updated_at=T0
)
KEY = ops_pb2.ApiKey(
    id="k-1", prefix="wl_abcd1234", role=ops_pb2.MEMBER_ROLE_MEMBER, name="ci", created_at=T0
)
MEMBER = ops_pb2.Member(user_id="ana", role=ops_pb2.MEMBER_ROLE_ADMIN, created_at=T0)
PLAN = ops_pb2.Plan(name="starter", version=2, limits=ops_pb2.PlanLimits(daily_message_cap=1000))
JOB = executor_pb2.ExecutionJob(id="j-1", intent_id=INTENT_ID, attempts=1)


def packed(message: Message) -> AnyMessage:
    found = AnyMessage()
    found.Pack(message)
    return found


def change(position: str, kind: ops_pb2.IntentChangeKind.ValueType) -> ops_pb2.WatchIntentsResponse:
    return ops_pb2.WatchIntentsResponse(
        position=position, change=ops_pb2.IntentChange(intent_id=INTENT_ID, kind=kind, occurred_at=T0)
    )


def connection(
    state: common_pb2.ConnectionState.ValueType, code: str = ""
) -> reputation_pb2.InstanceConnection:
    return reputation_pb2.InstanceConnection(
        state=state,
        observed_at=T0,
        qr=reputation_pb2.QrCode(code=code) if code else None,
    )


@dataclass(frozen=True)
class Case:
    """A command, what its services answer (unary: (service, method, response); streams: scripts), and
    the documents it prints: the proto JSON of `prints`."""

    argv: tuple[str, ...]
    answers: tuple[tuple[str, str, Message], ...] = ()
    streams: tuple[tuple[str, str, Script], ...] = ()
    prints: tuple[Message, ...] = ()


CASES = {
    "instances register": Case(
        ("instances", "register", "--provider", "simulator", "--ref", "sales-1", "--phone", "+5511987654321"),
        (("reputation", "RegisterInstance", reputation_pb2.RegisterInstanceResponse(instance=INSTANCE)),),
        prints=(INSTANCE,),
    ),
    "instances update": Case(
        ("instances", "update", INSTANCE_ID, "--name", "sales"),
        (("reputation", "UpdateInstance", reputation_pb2.UpdateInstanceResponse(instance=INSTANCE)),),
        prints=(INSTANCE,),
    ),
    "instances list": Case(
        ("instances", "list"),
        (("reputation", "ListInstances", reputation_pb2.ListInstancesResponse(instances=[INSTANCE, OTHER])),),
        prints=(INSTANCE, OTHER),
    ),
    "instances get": Case(
        ("instances", "get", INSTANCE_ID),
        (("reputation", "GetInstance", reputation_pb2.GetInstanceResponse(instance=INSTANCE)),),
        prints=(INSTANCE,),
    ),
    "instances logout": Case(
        ("instances", "logout", INSTANCE_ID),
        (("reputation", "LogoutInstance", reputation_pb2.LogoutInstanceResponse(instance=INSTANCE)),),
        prints=(INSTANCE,),
    ),
    "instances delete": Case(
        ("instances", "delete", INSTANCE_ID),
        (("reputation", "DeleteInstance", reputation_pb2.DeleteInstanceResponse(instance=INSTANCE)),),
        prints=(INSTANCE,),
    ),
    "instances connect": Case(
        ("instances", "connect", INSTANCE_ID),
        (
            (
                "reputation",
                "ConnectInstance",
                reputation_pb2.ConnectInstanceResponse(
                    instance=INSTANCE,
                    connection=connection(common_pb2.CONNECTION_STATE_QR_REQUIRED, "2@first-code"),
                ),
            ),
        ),
        (
            (
                "reputation",
                "WatchInstance",
                Script(
                    [
                        reputation_pb2.WatchInstanceResponse(
                            connection=connection(common_pb2.CONNECTION_STATE_QR_REQUIRED, "2@next-code")
                        ),
                        reputation_pb2.WatchInstanceResponse(
                            connection=connection(common_pb2.CONNECTION_STATE_CONNECTED)
                        ),
                    ]
                ),
            ),
        ),
        prints=(
            reputation_pb2.ConnectInstanceResponse(
                instance=INSTANCE,
                connection=connection(common_pb2.CONNECTION_STATE_QR_REQUIRED, "2@first-code"),
            ),
            reputation_pb2.WatchInstanceResponse(
                connection=connection(common_pb2.CONNECTION_STATE_QR_REQUIRED, "2@next-code")
            ),
            reputation_pb2.WatchInstanceResponse(
                connection=connection(common_pb2.CONNECTION_STATE_CONNECTED)
            ),
        ),
    ),
    "reputation show": Case(
        ("reputation", INSTANCE_ID),
        (
            (
                "reputation",
                "GetReputation",
                reputation_pb2.GetReputationResponse(
                    reputation=reputation_pb2.InstanceReputation(instance_id=INSTANCE_ID, score=80)
                ),
            ),
        ),
        prints=(
            reputation_pb2.GetReputationResponse(
                reputation=reputation_pb2.InstanceReputation(instance_id=INSTANCE_ID, score=80)
            ),
        ),
    ),
    "reputation plan": Case(
        ("reputation", "plan", INSTANCE_ID),
        (
            (
                "reputation",
                "GetWarmupPlan",
                reputation_pb2.GetWarmupPlanResponse(
                    plan=reputation_pb2.WarmupPlan(instance_id=INSTANCE_ID, day="2026-03-02", day_number=3)
                ),
            ),
        ),
        prints=(reputation_pb2.WarmupPlan(instance_id=INSTANCE_ID, day="2026-03-02", day_number=3),),
    ),
    "reputation warmup-settings": Case(
        ("reputation", "warmup-settings"),
        (
            (
                "reputation",
                "GetWarmupSettings",
                reputation_pb2.GetWarmupSettingsResponse(
                    settings=reputation_pb2.WarmupSettings(time_zone="America/Sao_Paulo")
                ),
            ),
        ),
        prints=(reputation_pb2.WarmupSettings(time_zone="America/Sao_Paulo"),),
    ),
    "send": Case(
        ("send", "--to", "+5511988887777", "--text", "hello"),
        (("gate", "SubmitIntent", gate_pb2.SubmitIntentResponse(intent=INTENT, replayed=True)),),
        prints=(gate_pb2.SubmitIntentResponse(intent=INTENT, replayed=True),),
    ),
    "intents": Case(
        ("intents",),
        (("gate", "ListIntents", gate_pb2.ListIntentsResponse(intents=[INTENT, SECOND_INTENT])),),
        prints=(INTENT, SECOND_INTENT),
    ),
    "intent": Case(
        ("intent", INTENT_ID),
        (
            (
                "gate",
                "GetIntent",
                gate_pb2.GetIntentResponse(
                    intent=INTENT, decision=gate_pb2.DecisionRecord(intent_id=INTENT_ID)
                ),
            ),
        ),
        prints=(
            gate_pb2.GetIntentResponse(intent=INTENT, decision=gate_pb2.DecisionRecord(intent_id=INTENT_ID)),
        ),
    ),
    "jobs": Case(
        ("jobs", INTENT_ID),
        (("executor", "ListJobs", executor_pb2.ListJobsResponse(jobs=[JOB])),),
        prints=(JOB,),
    ),
    "jobs --retry": Case(
        ("jobs", "--retry", "j-1"),
        (("executor", "RetryJob", executor_pb2.RetryJobResponse(job=JOB)),),
        prints=(JOB,),
    ),
    "watch": Case(
        ("watch",),
        streams=(
            (
                "ops",
                "WatchIntents",
                Script(
                    [
                        change("1", ops_pb2.INTENT_CHANGE_KIND_CREATED),
                        change("2", ops_pb2.INTENT_CHANGE_KIND_SENT),
                    ]
                ),
            ),
        ),
        prints=(
            change("1", ops_pb2.INTENT_CHANGE_KIND_CREATED),
            change("2", ops_pb2.INTENT_CHANGE_KIND_SENT),
        ),
    ),
    "pause": Case(
        ("pause", "organization"),
        (("ops", "PauseExecution", ops_pb2.PauseExecutionResponse(control=CONTROL)),),
        prints=(CONTROL,),
    ),
    "resume": Case(
        ("resume", "organization"),
        (("ops", "ResumeExecution", ops_pb2.ResumeExecutionResponse(control=CONTROL)),),
        prints=(CONTROL,),
    ),
    "controls": Case(
        ("controls",),
        (("ops", "ListControls", ops_pb2.ListControlsResponse(controls=[CONTROL, CONTROL])),),
        prints=(CONTROL, CONTROL),
    ),
    "timeline": Case(
        ("timeline", INTENT_ID),
        (
            (
                "ops",
                "GetIntentTimeline",
                ops_pb2.GetIntentTimelineResponse(
                    entries=[
                        ops_pb2.TimelineEntry(
                            occurred_at=T0,
                            subject="gate.intent.approved",
                            event=packed(gate_events_pb2.IntentApproved(intent_id=INTENT_ID)),
                        )
                    ]
                ),
            ),
        ),
        prints=(
            ops_pb2.TimelineEntry(
                occurred_at=T0,
                subject="gate.intent.approved",
                event=packed(gate_events_pb2.IntentApproved(intent_id=INTENT_ID)),
            ),
        ),
    ),
    "metrics": Case(
        ("metrics",),
        (
            (
                "ops",
                "GetExecutionMetrics",
                ops_pb2.GetExecutionMetricsResponse(
                    metrics=ops_pb2.ExecutionMetrics(totals=ops_pb2.ExecutionCounts(sent=7))
                ),
            ),
        ),
        prints=(
            ops_pb2.GetExecutionMetricsResponse(
                metrics=ops_pb2.ExecutionMetrics(totals=ops_pb2.ExecutionCounts(sent=7))
            ),
        ),
    ),
    "metrics --instance": Case(
        ("metrics", "--instance", INSTANCE_ID),
        (
            (
                "ops",
                "GetInstanceMetrics",
                ops_pb2.GetInstanceMetricsResponse(metrics=ops_pb2.InstanceMetrics(instance_id=INSTANCE_ID)),
            ),
        ),
        prints=(
            ops_pb2.GetInstanceMetricsResponse(metrics=ops_pb2.InstanceMetrics(instance_id=INSTANCE_ID)),
        ),
    ),
    "keys create": Case(
        ("keys", "create", "--name", "ci", "--role", "member"),
        (("ops", "CreateApiKey", ops_pb2.CreateApiKeyResponse(api_key=KEY, secret="wl_abcd1234_s3cr3t")),),
        prints=(ops_pb2.CreateApiKeyResponse(api_key=KEY, secret="wl_abcd1234_s3cr3t"),),
    ),
    "keys list": Case(
        ("keys", "list"),
        (("ops", "ListApiKeys", ops_pb2.ListApiKeysResponse(api_keys=[KEY])),),
        prints=(KEY,),
    ),
    "keys revoke": Case(
        ("keys", "revoke", "k-1"),
        (("ops", "RevokeApiKey", ops_pb2.RevokeApiKeyResponse(api_key=KEY)),),
        prints=(KEY,),
    ),
    "members": Case(
        ("members",),
        (("ops", "ListMembers", ops_pb2.ListMembersResponse(members=[MEMBER])),),
        prints=(MEMBER,),
    ),
    "members add": Case(
        ("members", "add", "ana", "--role", "admin"),
        (("ops", "AddMember", ops_pb2.AddMemberResponse(member=MEMBER)),),
        prints=(MEMBER,),
    ),
    "plan": Case(("plan",), (("ops", "GetPlan", ops_pb2.GetPlanResponse(plan=PLAN)),), prints=(PLAN,)),
    "plan set": Case(
        ("plan", "set", "--daily", "1000"),
        (
            ("ops", "GetPlan", ops_pb2.GetPlanResponse(plan=ops_pb2.Plan(name="starter"))),
            ("ops", "SetPlan", ops_pb2.SetPlanResponse(plan=PLAN)),
        ),
        prints=(PLAN,),
    ),
    "audit": Case(
        ("audit",),
        (
            (
                "ops",
                "ListAuditEntries",
                ops_pb2.ListAuditEntriesResponse(
                    entries=[ops_pb2.AuditEntry(actor="ana", action="PauseExecution", occurred_at=T0)]
                ),
            ),
        ),
        prints=(ops_pb2.AuditEntry(actor="ana", action="PauseExecution", occurred_at=T0),),
    ),
}


@pytest.fixture
def services(gate, executor, registry, ops, monkeypatch) -> dict[str, FakeService]:
    monkeypatch.setenv("WHATLEAD_API_KEY", API_KEY)
    return {"gate": gate, "executor": executor, "reputation": registry, "ops": ops}


def proto_json(message: Message) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def documents(out: str) -> list[Any]:
    return [json.loads(line) for line in out.splitlines()]


def prepared(services: dict[str, FakeService], case: Case) -> None:
    for service, method, response in case.answers:
        services[service].answer(method, response)
    for service, method, script in case.streams:
        services[service].stream(method, script)


@pytest.mark.parametrize("name", CASES)
async def test_with_output_json_a_command_prints_proto_json_one_document_per_line(services, whatlead, name):
    case = CASES[name]
    prepared(services, case)

    code, out, err = await whatlead("--output", "json", *case.argv)

    assert code == 0, err
    assert documents(out) == [proto_json(message) for message in case.prints]


@pytest.mark.parametrize("name", CASES)
async def test_a_servers_refusal_exits_with_64_plus_its_code_and_one_line_naming_it(services, whatlead, name):
    case = CASES[name]
    for fake in services.values():
        fake.refusal = (grpc.StatusCode.NOT_FOUND, "no such thing")

    code, out, err = await whatlead("-o", "json", *case.argv)

    assert code == 64 + 5  # NOT_FOUND is 5
    assert out == "" and err == "error: NOT_FOUND: no such thing\n"


def test_every_command_has_a_case_here_or_in_the_scripting_tests():
    from tests.libs.cli.test_scripting import COVERED_THERE

    assert set(command_names()) <= set(CASES) | set(COVERED_THERE)


def command_names() -> list[str]:
    """ "instances register", "members", "members add", ...: every command a user can run."""
    found = []
    for name, command in subcommands(parser()).items():
        nested = subcommands(command)
        if command.get_default("run") is not None or not nested:
            found.append(name)
        found += [f"{name} {action}" for action in nested]
    return found


def subcommands(command: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {
        name: sub
        for action in command._actions
        if isinstance(action, argparse._SubParsersAction)
        for name, sub in action.choices.items()
    }
