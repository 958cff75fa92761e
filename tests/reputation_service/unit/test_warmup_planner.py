"""The warm-up planner's passes over hand-written fakes: which numbers get a plan, when each message goes to
the Gate and with what, what a refusal or an outage does, and what GetWarmupPlan shows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import InvalidArgument, NotFound
from libs.seedwork.shared_kernel import ConnectionState, Provider, Purpose
from reputation_service.application.plan_warmup import (
    PlanWarmupHandler,
    SubmitDueWarmupHandler,
    TrackSubmittedWarmupHandler,
)
from reputation_service.application.warmup_plans import (
    GetWarmupPlan,
    GetWarmupPlanHandler,
    GetWarmupSettings,
    GetWarmupSettingsHandler,
)
from reputation_service.application.warmup_ports import GateAnswer, GateOutcome
from reputation_service.domain.instance import Instance
from reputation_service.domain.warmup import WarmupPhase
from reputation_service.domain.warmup_plan import MessageRole, MessageStatus, WarmupSchedule
from reputation_service.infrastructure.age_phase_source import AgePhaseSource
from tests.reputation_service.unit.fakes import FakeReputationUnitOfWork
from tests.reputation_service.unit.warmup_fakes import FakePhaseSource, FakeWarmupGate, FakeWarmupStore

ORG = "org-acme"
DAY = date(2026, 12, 2)
BEFORE_HOURS = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # 07:00 in São Paulo


def number(
    uow: FakeReputationUnitOfWork,
    phone: str,
    *,
    org: str = ORG,
    state: ConnectionState = ConnectionState.CONNECTED,
    purposes: frozenset[Purpose] = frozenset({Purpose.WARMUP, Purpose.DISPATCH}),
) -> Instance:
    instance = Instance.register(
        organization_id=org,
        display_name=phone,
        provider=Provider.WAHA,
        provider_instance_ref=f"ref-{phone}",
        phone=phone,
        purposes=purposes,
        connection_state=state,
        now=datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
    )
    uow._committed_rows[instance.id] = instance
    uow.instances.rows[instance.id] = instance
    return instance


@pytest.fixture
def uow() -> FakeReputationUnitOfWork:
    return FakeReputationUnitOfWork()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(BEFORE_HOURS)


@pytest.fixture
def store() -> FakeWarmupStore:
    return FakeWarmupStore()


@pytest.fixture
def gate() -> FakeWarmupGate:
    return FakeWarmupGate()


def planner(uow, store, clock, phases=None) -> PlanWarmupHandler:
    return PlanWarmupHandler(lambda: uow, store, phases or FakePhaseSource(), clock)


async def test_connected_warming_numbers_get_todays_plan_once(uow, store, clock) -> None:
    a, b = number(uow, "5511900000001"), number(uow, "5511900000002")
    number(uow, "5511900000003", state=ConnectionState.DISCONNECTED)
    number(uow, "5511900000004", purposes=frozenset({Purpose.DISPATCH}))
    stable = number(uow, "5511900000005")
    phases = FakePhaseSource({stable.id: WarmupPhase.STABLE, b.id: WarmupPhase.WARMING})

    first = await planner(uow, store, clock, phases)()
    again = await planner(uow, store, clock, phases)()

    assert set(store.plans) == {(a.id, DAY), (b.id, DAY)}
    assert first.plans == 2 and first.messages == len(store.messages) and again.plans == 0
    # Day 2: 6 conversations each, an opener and a reply from the other number.
    assert (
        store.plans[(a.id, DAY)].conversations == 6 and store.plans[(b.id, DAY)].phase is WarmupPhase.WARMING
    )
    partners = {m.partner.instance_id for m in store.messages.values() if m.instance_id == a.id}
    # An established number is a good partner; the disconnected and the dispatch-only ones are nobody's.
    assert partners == {b.id, stable.id}


async def test_numbers_pair_only_within_their_organization_plus_its_friendly_numbers(
    uow, store, clock
) -> None:
    a = number(uow, "5511900000001")
    number(uow, "5511900000002", org="org-other")
    store.settings[ORG] = WarmupSchedule(friendly_numbers=("5521988887777",))

    await planner(uow, store, clock)()

    plan = store.plans[(a.id, DAY)]
    assert {m.partner.phone for m in plan.messages} == {"5521988887777"}
    assert all(m.role is MessageRole.OPENER for m in plan.messages)


async def test_a_plan_made_late_in_the_day_skips_what_is_already_past(uow, store, clock) -> None:
    a, _ = number(uow, "5511900000001"), number(uow, "5511900000002")
    clock.set(datetime(2026, 12, 2, 18, 0, tzinfo=UTC))  # 15:00 in São Paulo

    result = await planner(uow, store, clock)()

    messages = [m for m in store.messages.values() if m.instance_id == a.id]
    past = [m for m in messages if m.due_at < clock.now()]
    assert past and all(m.status is MessageStatus.SKIPPED and "before the plan" in m.reason for m in past)
    assert all(m.status is MessageStatus.PLANNED for m in messages if m.due_at >= clock.now())
    assert result.skipped == len([m for m in store.messages.values() if m.status is MessageStatus.SKIPPED])


async def test_each_message_goes_to_the_gate_when_its_time_comes_as_a_warmup_intent(uow, store, clock, gate):
    number(uow, "5511900000001"), number(uow, "5511900000002")
    await planner(uow, store, clock)()
    submit = SubmitDueWarmupHandler(store, gate, clock)

    assert (await submit()).submitted == 0 and gate.submitted == []  # before the sending hours
    first_due = min(m.due_at for m in store.messages.values())
    clock.set(first_due)
    result = await submit()

    assert result.submitted == len(gate.submitted) >= 1
    assert [m.idempotency_key for m in gate.submitted] == [
        m.idempotency_key for m in store.messages.values() if m.due_at == first_due
    ]
    sent = store.messages[gate.submitted[0].idempotency_key]
    assert (
        sent.status is MessageStatus.SUBMITTED
        and sent.intent_id == "intent-1"
        and sent.submitted_at == first_due
    )
    assert (await submit()).submitted == 0  # once


async def test_a_gate_refusal_fails_the_message_with_the_gates_reason(uow, store, clock, gate) -> None:
    number(uow, "5511900000001"), number(uow, "5511900000002")
    await planner(uow, store, clock)()
    clock.set(min(m.due_at for m in store.messages.values()))
    gate.answers = [GateAnswer(outcome=GateOutcome.REFUSED, intent_id="intent-9", reason="RATE_LIMIT")] * 2

    result = await SubmitDueWarmupHandler(store, gate, clock)()

    assert sum(result.refused.values()) == len(gate.submitted) and set(result.refused) == {"RATE_LIMIT"}
    refused = store.messages[gate.submitted[0].idempotency_key]
    assert (refused.status, refused.reason, refused.intent_id) == (
        MessageStatus.FAILED,
        "RATE_LIMIT",
        "intent-9",
    )


async def test_a_gate_that_cannot_be_asked_gets_the_same_key_again_later(uow, store, clock, gate) -> None:
    number(uow, "5511900000001"), number(uow, "5511900000002")
    await planner(uow, store, clock)()
    clock.set(min(m.due_at for m in store.messages.values()))
    submit = SubmitDueWarmupHandler(store, gate, clock, retry_after=timedelta(seconds=30))
    gate.answers = [GateAnswer(outcome=GateOutcome.RETRY, reason="UNAVAILABLE")]

    first = await submit()
    key = gate.submitted[0].idempotency_key
    assert first.retry_later == 1 and store.messages[key].status is MessageStatus.PLANNED
    assert key not in [m.idempotency_key for m in gate.submitted[1:]]
    await submit()
    assert [m.idempotency_key for m in gate.submitted].count(key) == 1  # not before retry_after

    clock.advance(seconds=30)
    await submit()
    assert [m.idempotency_key for m in gate.submitted].count(key) == 2
    assert store.messages[key].status is MessageStatus.SUBMITTED


async def test_a_message_long_overdue_is_skipped_rather_than_sent_in_a_burst(uow, store, clock, gate) -> None:
    number(uow, "5511900000001"), number(uow, "5511900000002")
    await planner(uow, store, clock)()
    first_due = min(m.due_at for m in store.messages.values())
    clock.set(first_due + timedelta(minutes=31))

    result = await SubmitDueWarmupHandler(store, gate, clock, late_after=timedelta(minutes=30))()

    late = [m for m in store.messages.values() if m.due_at <= first_due]
    assert result.skipped >= len(late) and all(m.status is MessageStatus.SKIPPED for m in late)
    assert all(m.due_at > first_due + timedelta(minutes=1) for m in gate.submitted)


async def test_the_gates_later_answer_completes_the_progress(uow, store, clock, gate) -> None:
    number(uow, "5511900000001"), number(uow, "5511900000002")
    await planner(uow, store, clock)()
    clock.set(min(m.due_at for m in store.messages.values()))
    await SubmitDueWarmupHandler(store, gate, clock)()
    first, *others = gate.submitted
    gate.outcomes["intent-1"] = GateAnswer(
        outcome=GateOutcome.SENT, intent_id="intent-1", instance_id="inst-x"
    )
    if others:
        gate.outcomes["intent-2"] = GateAnswer(
            outcome=GateOutcome.REFUSED, intent_id="intent-2", reason="EXPIRED"
        )
    track = TrackSubmittedWarmupHandler(store, gate, clock, recheck=timedelta(seconds=30))

    assert (await track()).sent == 0  # not looked at again this soon
    clock.advance(seconds=30)
    result = await track()

    assert result.sent == 1 and store.messages[first.idempotency_key].status is MessageStatus.SENT
    assert store.messages[first.idempotency_key].gate_instance_id == "inst-x"
    if others:
        assert result.refused == {"EXPIRED": 1}
        assert store.messages[others[0].idempotency_key].status is MessageStatus.FAILED


async def test_get_warmup_plan_shows_the_plan_with_its_progress(uow, store, clock, gate) -> None:
    a, _ = number(uow, "5511900000001"), number(uow, "5511900000002")
    await planner(uow, store, clock)()
    clock.set(min(m.due_at for m in store.messages.values() if m.instance_id == a.id))
    await SubmitDueWarmupHandler(store, gate, clock)()
    get = GetWarmupPlanHandler(lambda: uow, store, FakePhaseSource(), clock)

    plan = await get(GetWarmupPlan(organization_id=ORG, instance_id=a.id))

    progress = plan.progress()
    assert plan.day == DAY and plan.created_at is not None
    assert progress[MessageStatus.SUBMITTED] >= 1
    assert sum(progress.values()) == len(plan.messages) == 12


async def test_get_warmup_plan_of_another_organizations_number_is_not_found(uow, store, clock) -> None:
    theirs = number(uow, "5511900000001", org="org-other")
    get = GetWarmupPlanHandler(lambda: uow, store, FakePhaseSource(), clock)

    with pytest.raises(NotFound):
        await get(GetWarmupPlan(organization_id=ORG, instance_id=theirs.id))
    with pytest.raises(InvalidArgument):
        await get(GetWarmupPlan(organization_id=ORG, instance_id="not-an-id"))
    with pytest.raises(InvalidArgument):
        await get(GetWarmupPlan(organization_id="org-other", instance_id=theirs.id, day=date(2030, 1, 1)))


async def test_a_day_without_a_plan_comes_back_empty_and_says_why(uow, store, clock) -> None:
    a = number(uow, "5511900000001")
    get = GetWarmupPlanHandler(lambda: uow, store, FakePhaseSource({a.id: WarmupPhase.STABLE}), clock)

    plan = await get(GetWarmupPlan(organization_id=ORG, instance_id=a.id, day=date(2026, 11, 30)))

    assert plan.messages == () and plan.created_at is None and plan.phase is WarmupPhase.STABLE
    assert "no plan for 2026-11-30" in plan.note and plan.day_number == 0


async def test_settings_default_to_eight_to_eight_in_sao_paulo(store) -> None:
    assert await GetWarmupSettingsHandler(store)(GetWarmupSettings(organization_id=ORG)) == WarmupSchedule()


async def test_the_stand_in_phase_source_reads_newborn_until_n_days_then_stable(uow) -> None:
    a = number(uow, "5511900000001")  # registered 2026-12-01 12:00 UTC
    source = AgePhaseSource(newborn_days=7)

    assert await source.phase_of(a, datetime(2026, 12, 8, 11, 59, tzinfo=UTC)) is WarmupPhase.NEWBORN
    assert await source.phase_of(a, datetime(2026, 12, 8, 12, 0, tzinfo=UTC)) is WarmupPhase.STABLE
