"""The warm-up planner in the running reputation service, over real PostgreSQL, talking to a Gate over real
gRPC: a stand-in Gate server in this process that records every SubmitIntent and keeps one intent per
idempotency key, as the Gate does. Time is a fake clock the test moves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
import pytest

from libs.cli.main import main
from libs.seedwork.clock import FakeClock
from libs.testing.services import running_service
from reputation_service.bootstrap import build
from reputation_service.config import ReputationSettings
from tests.conftest import NATS_URL
from whatlead.common.v1 import common_pb2
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

ORG = "org-warmup"
# 07:00 in São Paulo, on the day the numbers are registered: before the sending hours.
START = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@dataclass
class StandInGate(gate_pb2_grpc.GateServiceServicer):
    """Answers SubmitIntent APPROVED through the pinned instance (as the Gate does), one intent per
    idempotency key (a repeat is replayed); `stall` makes it take the request and answer too late for the
    caller's deadline."""

    calls: list[gate_pb2.SubmitIntentRequest] = field(default_factory=list)
    credentials: set[str] = field(default_factory=set)  # the `authorization` of every call
    intents: dict[str, gate_pb2.MessageIntent] = field(default_factory=dict)
    stall: float = 0.0

    async def SubmitIntent(
        self, request: gate_pb2.SubmitIntentRequest, context: grpc.aio.ServicerContext
    ) -> gate_pb2.SubmitIntentResponse:
        self.calls.append(request)
        self.credentials.add(str(dict(context.invocation_metadata() or ()).get("authorization", "")))
        replayed = request.idempotency_key in self.intents
        if not replayed:
            self.intents[request.idempotency_key] = gate_pb2.MessageIntent(
                id=f"0193b000-0000-7000-8000-{len(self.intents):012d}",
                organization_id=request.organization_id,
                idempotency_key=request.idempotency_key,
                status=gate_pb2.INTENT_STATUS_APPROVED,
                decided_by_instance_id=request.instance_id or "0193b000-0000-7000-8000-ffffffffffff",
            )
        if self.stall:
            await asyncio.sleep(self.stall)
        return gate_pb2.SubmitIntentResponse(intent=self.intents[request.idempotency_key], replayed=replayed)

    async def GetIntent(
        self, request: gate_pb2.GetIntentRequest, context: grpc.aio.ServicerContext
    ) -> gate_pb2.GetIntentResponse:
        intent = next((i for i in self.intents.values() if i.id == request.intent_id), None)
        if intent is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such intent")
        return gate_pb2.GetIntentResponse(intent=intent)

    # Not the planner's business.
    async def CreateIntent(
        self, request: gate_pb2.CreateIntentRequest, context: grpc.aio.ServicerContext
    ) -> gate_pb2.CreateIntentResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not used by the planner")

    async def DecideIntent(
        self, request: gate_pb2.DecideIntentRequest, context: grpc.aio.ServicerContext
    ) -> gate_pb2.DecideIntentResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not used by the planner")

    async def ListIntents(
        self, request: gate_pb2.ListIntentsRequest, context: grpc.aio.ServicerContext
    ) -> gate_pb2.ListIntentsResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not used by the planner")


@pytest.fixture
async def gate() -> AsyncIterator[tuple[StandInGate, str]]:
    stand_in = StandInGate()
    server = grpc.aio.server()
    gate_pb2_grpc.add_GateServiceServicer_to_server(stand_in, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield stand_in, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def settings(migrated_database, subject_root, jetstream, gate) -> ReputationSettings:
    return ReputationSettings(
        database_url=migrated_database("reputation_service"),
        nats_url=NATS_URL,
        subject_root=subject_root,
        gate_address=gate[1],
        gate_deadline_seconds=0.5,
        warmup_interval_seconds=0.05,
        warmup_plan_interval_seconds=0.05,
    )


async def register(
    stub: reputation_pb2_grpc.ReputationServiceAsyncStub, ref: str, phone: str, org: str = ORG
) -> str:
    response = await stub.RegisterInstance(
        reputation_pb2.RegisterInstanceRequest(
            organization_id=org,
            display_name=ref,
            provider=common_pb2.PROVIDER_WAHA,
            provider_instance_ref=ref,
            phone=phone,
            purposes=[common_pb2.PURPOSE_WARMUP, common_pb2.PURPOSE_DISPATCH],
            connection_state=common_pb2.CONNECTION_STATE_CONNECTED,
        )
    )
    return response.instance.id


async def eventually(check: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def planned(
    stub: reputation_pb2_grpc.ReputationServiceAsyncStub, instance_id: str
) -> reputation_pb2.WarmupPlan:
    """The plan, once the planner's first pass has made it."""
    for _ in range(250):
        plan = await plan_of(stub, instance_id)
        if plan.planned:
            return plan
        await asyncio.sleep(0.02)
    raise AssertionError("no plan was made")


async def caught_up(
    stub: reputation_pb2_grpc.ReputationServiceAsyncStub, ids: list[str], now: datetime
) -> None:
    """Until every message of these numbers due by `now` has gone to the Gate (none still PLANNED)."""
    for instance_id in ids:
        for _ in range(250):
            plan = await plan_of(stub, instance_id)
            due = [
                m for c in plan.conversations for m in c.messages if m.due_at.ToDatetime(tzinfo=UTC) <= now
            ]
            if all(m.status != reputation_pb2.WARMUP_MESSAGE_STATUS_PLANNED for m in due):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the planner did not catch up")


async def plan_of(
    stub: reputation_pb2_grpc.ReputationServiceAsyncStub, instance_id: str
) -> reputation_pb2.WarmupPlan:
    response = await stub.GetWarmupPlan(
        reputation_pb2.GetWarmupPlanRequest(organization_id=ORG, instance_id=instance_id)
    )
    return response.plan


async def test_due_messages_reach_the_gate_as_warmup_intents_and_the_plan_shows_their_progress(
    settings, gate, clock
) -> None:
    stand_in, _ = gate
    async with running_service(build, settings, clock=clock) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        first = await register(stub, "warm-1", "+5511900000001")
        second = await register(stub, "warm-2", "+5511900000002")
        plan = await planned(stub, first)
        assert plan.planned and plan.day == "2026-12-02" and plan.day_number == 1
        assert plan.phase == reputation_pb2.WARMUP_PHASE_NEWBORN and plan.time_zone == "America/Sao_Paulo"
        assert len(plan.conversations) == 4 and plan.progress.total == 8 and plan.progress.planned == 8
        assert {c.partner_instance_id for c in plan.conversations} == {second}
        assert stand_in.calls == []  # nothing before its time

        # The whole day passes within the sending hours, a little at a time.
        other = await planned(stub, second)
        last = max(
            m.due_at.ToDatetime(tzinfo=UTC)
            for p in (plan, other)
            for c in p.conversations
            for m in c.messages
        )
        while clock.now() < last:
            clock.advance(minutes=10)
            await caught_up(stub, [first, second], clock.now())
        await eventually(lambda: len(stand_in.intents) == 16)  # both numbers' plans
        # The planner calls the Gate as the service, naming the organization.
        assert stand_in.credentials == {f"Bearer {service.service_credential}"}

        for request in stand_in.calls:
            assert (
                request.purpose == common_pb2.PURPOSE_WARMUP
                and request.origin == gate_pb2.INTENT_ORIGIN_WARMUP
            )
            assert request.idempotency_key.startswith("warmup:") and request.organization_id == ORG
            assert request.target.kind == common_pb2.TARGET_KIND_PHONE and request.payload.text.text
        mine = [r for r in stand_in.calls if r.idempotency_key.startswith(f"warmup:{first}:2026-12-02:")]
        assert len(mine) == len({r.idempotency_key for r in mine}) == 8
        assert {r.target.value for r in mine} == {"5511900000001", "5511900000002"}
        # Each message is pinned to its planned sender, and no number writes to its own phone: the opener
        # leaves from the warming number to its partner, the reply from the partner back.
        sender_of = {"5511900000002": first, "5511900000001": second}
        assert all(r.instance_id == sender_of[r.target.value] for r in stand_in.calls)

        plan = await plan_of(stub, first)
        assert plan.progress.submitted == 8 and plan.progress.planned == 0
        message = plan.conversations[0].messages[0]
        assert message.status == reputation_pb2.WARMUP_MESSAGE_STATUS_SUBMITTED and message.intent_id
        assert message.gate_instance_id == message.sender_instance_id == first


async def test_a_restart_neither_plans_again_nor_submits_twice(settings, gate, clock) -> None:
    stand_in, _ = gate
    async with running_service(build, settings, clock=clock) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        first = await register(stub, "warm-1", "+5511900000001")
        second = await register(stub, "warm-2", "+5511900000002")
        before = await planned(stub, first)
        await planned(stub, second)
        halfway = before.conversations[2].at.ToDatetime(tzinfo=UTC)
        while clock.now() < halfway:
            clock.advance(minutes=10)
            await caught_up(stub, [first, second], clock.now())
    submitted = {r.idempotency_key for r in stand_in.calls}
    assert any(key.startswith(f"warmup:{first}:") for key in submitted)
    calls = len(stand_in.calls)

    async with running_service(build, settings, clock=clock) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        await asyncio.sleep(0.5)  # several passes
        assert len(stand_in.calls) == calls  # nothing new is due, nothing is submitted again
        after = await plan_of(stub, first)
        assert after.created_at == before.created_at
        assert [m.idempotency_key for c in after.conversations for m in c.messages] == [
            m.idempotency_key for c in before.conversations for m in c.messages
        ]
        clock.set(datetime(2026, 12, 2, 23, 30, tzinfo=UTC))  # 20:30 there: the rest of the day is late
        await asyncio.sleep(0.5)
        assert {r.idempotency_key for r in stand_in.calls} == submitted
        late = await plan_of(stub, first)
        assert late.progress.planned == 0 and late.progress.skipped == 8 - late.progress.submitted


async def test_an_answer_lost_to_the_deadline_is_asked_again_with_the_same_key_and_is_one_intent(
    settings, gate, clock
) -> None:
    stand_in, _ = gate
    stand_in.stall = 1.0  # the Gate takes it, and answers after the 0.5 s deadline
    async with running_service(build, settings, clock=clock) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        first = await register(stub, "warm-1", "+5511900000001")
        await register(stub, "warm-2", "+5511900000002")
        plan = await planned(stub, first)
        clock.set(plan.conversations[0].at.ToDatetime(tzinfo=UTC))
        # Its first opener (the other number's messages may reach the Gate first).
        key = plan.conversations[0].messages[0].idempotency_key
        await eventually(lambda: key in [c.idempotency_key for c in stand_in.calls])
        await asyncio.sleep(0.7)
        stand_in.stall = 0.0
        clock.advance(seconds=31)  # the planner's retry_after
        await eventually(lambda: [c.idempotency_key for c in stand_in.calls].count(key) >= 2)

        assert list(stand_in.intents).count(key) == 1
        for _ in range(100):
            plan = await plan_of(stub, first)
            message = next(m for c in plan.conversations for m in c.messages if m.idempotency_key == key)
            if message.status == reputation_pb2.WARMUP_MESSAGE_STATUS_SUBMITTED:
                break
            await asyncio.sleep(0.02)
        assert message.status == reputation_pb2.WARMUP_MESSAGE_STATUS_SUBMITTED
        assert message.intent_id == stand_in.intents[key].id


async def test_get_warmup_plan_is_scoped_to_the_organization_and_settings_are_checked(
    settings, clock
) -> None:
    async with running_service(build, settings, clock=clock) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        theirs = await register(stub, "theirs", "+5511900000009", org="org-other")

        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await plan_of(stub, theirs)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SetWarmupSettings(
                reputation_pb2.SetWarmupSettingsRequest(
                    organization_id=ORG,
                    settings=reputation_pb2.WarmupSettings(
                        sending_hours_start="20:00", sending_hours_end="08:00", time_zone="Mars/Olympus"
                    ),
                )
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        stored = await stub.SetWarmupSettings(
            reputation_pb2.SetWarmupSettingsRequest(
                organization_id=ORG,
                settings=reputation_pb2.WarmupSettings(
                    sending_hours_start="09:30",
                    sending_hours_end="18:00",
                    time_zone="America/Manaus",
                    friendly_numbers=["+55 21 98888-7777"],
                ),
            )
        )
        assert list(stored.settings.friendly_numbers) == ["5521988887777"]
        read = await stub.GetWarmupSettings(reputation_pb2.GetWarmupSettingsRequest(organization_id=ORG))
        assert read.settings == stored.settings
        other = await stub.GetWarmupSettings(
            reputation_pb2.GetWarmupSettingsRequest(organization_id="org-other")
        )
        assert (other.settings.sending_hours_start, other.settings.time_zone) == (
            "08:00",
            "America/Sao_Paulo",
        )


async def test_the_cli_prints_the_plan(settings, clock, monkeypatch, capsys, cli_credentials) -> None:
    async with running_service(build, settings, clock=clock) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        first = await register(stub, "warm-1", "+5511900000001")
        await register(stub, "warm-2", "+5511900000002")
        await planned(stub, first)
        monkeypatch.setenv("WHATLEAD_REPUTATION_ADDR", service.address)
        monkeypatch.setenv("WHATLEAD_API_KEY", service.key(ORG))
        capsys.readouterr()

        code = await asyncio.to_thread(main, ["--org", ORG, "reputation", "plan", first])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert (
            f"warm-up plan of {first} for 2026-12-02 (day 1, NEWBORN), 08:00-20:00 America/Sao_Paulo" in out
        )
        assert "4 conversations, 8 messages: 8 planned, 0 submitted" in out
        assert out.count("with +5511900000002") == 4 and "opener PLANNED" in out and "reply  PLANNED" in out

        code = await asyncio.to_thread(main, ["--org", ORG, "reputation", "plan", first, "--json"])
        out, _ = capsys.readouterr()
        assert code == 0 and json.loads(out)["progress"]["total"] == 8

        code = await asyncio.to_thread(
            main, ["--org", ORG, "reputation", "warmup-settings", "--hours", "09:00-18:00"]
        )
        out, _ = capsys.readouterr()
        assert code == 0 and json.loads(out)["sending_hours_start"] == "09:00"
        assert json.loads(out)["time_zone"] == "America/Sao_Paulo"
