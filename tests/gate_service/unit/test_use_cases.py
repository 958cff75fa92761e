"""Use cases through hand-written fakes: idempotent submit, scheduler, execution reports, projections."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import pytest

from gate_service.application.create_intent import CreateIntent, CreateIntentHandler
from gate_service.application.decide_awaiting_intents import (
    DecideAwaitingIntents,
    DecideAwaitingIntentsHandler,
)
from gate_service.application.decide_intent import DecideIntent, DecideIntentHandler
from gate_service.application.intent_creation import IdempotentIntentStore
from gate_service.application.queries import GetIntent, GetIntentHandler, ListIntents, ListIntentsHandler
from gate_service.application.record_execution import MessageFailedReport
from gate_service.application.release_due_intents import ReleaseDueIntents, ReleaseDueIntentsHandler
from gate_service.application.submit_intent import SubmitIntent, SubmitIntentHandler
from gate_service.application.update_projections import ProjectionUpdater, RebuildProjectionsHandler
from gate_service.domain.decision import DecisionReason
from gate_service.domain.events import (
    IntentApproved,
    IntentCreated,
    IntentDropped,
    IntentFailed,
    IntentQueued,
    IntentSent,
)
from gate_service.domain.intent import IntentStatus, MessageIntent, TextPayload
from gate_service.domain.policies import HealthStatus, WarmupPhase
from gate_service.domain.ports import IntentFilter
from gate_service.domain.projection import Plan, Reputation
from gate_service.entrypoints.workers import QueuedIntentScheduler
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, RefusedByStore
from libs.seedwork.pagination import page_request
from libs.seedwork.shared_kernel import ControlScope, MessageType, Purpose, TargetKind
from tests.gate_service.unit.fakes import FakeGateUnitOfWork, FakeInstanceArrivals, FakeRecentIntentKeys
from tests.gate_service.unit.support import ORG, World, failed, instance, record, sent


@pytest.fixture
def w() -> World:
    return World()


@pytest.fixture
def uow() -> FakeGateUnitOfWork:
    return FakeGateUnitOfWork()


def submit_command(key: str = "", text: str = "hello", **overrides: Any) -> SubmitIntent:
    fields: dict[str, Any] = dict(
        organization_id=ORG,
        idempotency_key=key,
        target_kind=TargetKind.PHONE,
        target_value="+5511987654321",
        type=MessageType.TEXT,
        purpose=Purpose.DISPATCH,
        origin=None,
        campaign_id="",
        payload=TextPayload(text),
    )
    fields.update(overrides)
    return SubmitIntent(**fields)


def intent_store(w: World, uow: FakeGateUnitOfWork) -> IdempotentIntentStore:
    return IdempotentIntentStore(lambda: uow, FakeRecentIntentKeys(), w.clock)


def submitter(w: World, uow: FakeGateUnitOfWork) -> SubmitIntentHandler:
    return SubmitIntentHandler(intent_store(w, uow), w.decider)


def creator(w: World, uow: FakeGateUnitOfWork) -> CreateIntentHandler:
    return CreateIntentHandler(intent_store(w, uow))


def create_command(**overrides: Any) -> CreateIntent:
    return CreateIntent(**vars(submit_command(**overrides)))


async def test_submit_creates_decides_and_announces_in_one_commit(w, uow):
    w.add(phase=WarmupPhase.STABLE)
    result = await submitter(w, uow)(submit_command("k-1"))
    assert result.intent.status is IntentStatus.APPROVED and not result.replayed
    assert uow.commits == 1
    assert [type(e) for e in uow.committed_events] == [IntentCreated, IntentApproved]


async def test_the_same_key_returns_the_same_intent_and_decides_once(w, uow):
    w.add(phase=WarmupPhase.STABLE)
    submit = submitter(w, uow)
    first = await submit(submit_command("k-1"))
    again = await submit(submit_command("k-1"))
    assert again.replayed and again.intent.id == first.intent.id
    assert len(uow.intents.rows) == 1 and len(uow.events_of(IntentApproved)) == 1


async def test_concurrent_identical_submits_create_one_intent(w, uow):
    w.add(phase=WarmupPhase.STABLE)
    submit = submitter(w, uow)
    results = await asyncio.gather(*(submit(submit_command("k-2")) for _ in range(20)))
    assert len({r.intent.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert len(uow.intents.rows) == 1


async def test_the_same_key_with_a_different_body_is_rejected(w, uow):
    w.add(phase=WarmupPhase.STABLE)
    submit = submitter(w, uow)
    await submit(submit_command("k-3", text="one"))
    with pytest.raises(AlreadyExists):
        await submit(submit_command("k-3", text="two"))
    assert len(uow.intents.rows) == 1


async def test_bad_input_creates_nothing(w, uow):
    with pytest.raises(InvalidArgument):
        await submitter(w, uow)(submit_command("k-4", text=" "))
    assert uow.intents.rows == {} and uow.committed_events == []


async def test_create_then_decide(w, uow):
    w.add(phase=WarmupPhase.STABLE)
    created = await creator(w, uow)(create_command())
    assert created.intent.status is IntentStatus.PENDING
    assert [type(e) for e in uow.committed_events] == [IntentCreated]
    decide = DecideIntentHandler(lambda: uow, w.decider)
    decided = await decide(DecideIntent(ORG, created.intent.id))
    assert decided.status is IntentStatus.APPROVED
    with pytest.raises(FailedPrecondition):
        await decide(DecideIntent(ORG, created.intent.id))
    with pytest.raises(NotFound):
        await decide(DecideIntent("other-org", created.intent.id))


async def test_get_and_list_are_scoped_to_the_organization(w, uow):
    w.add(phase=WarmupPhase.STABLE)
    made = await submitter(w, uow)(submit_command())
    assert (await GetIntentHandler(lambda: uow)(GetIntent(ORG, made.intent.id))).decision is not None
    with pytest.raises(NotFound):
        await GetIntentHandler(lambda: uow)(GetIntent("org-other", made.intent.id))
    page = await ListIntentsHandler(lambda: uow)(
        ListIntents(ORG, page_request(0, ""), IntentFilter(status=IntentStatus.APPROVED))
    )
    assert [i.id for i in page.items] == [made.intent.id]
    other = await ListIntentsHandler(lambda: uow)(
        ListIntents("org-other", page_request(0, ""), IntentFilter())
    )
    assert other.items == []


async def test_the_scheduler_approves_when_the_window_opens_and_drops_the_expired(w, uow):
    cooling = w.add(phase=WarmupPhase.STABLE, cooldown=timedelta(minutes=10))
    submit = submitter(w, uow)
    waiting = (await submit(submit_command(target_value="+5511900000001"))).intent
    short = (
        await submit(
            submit_command(
                target_value="+5511900000002", expires_at=w.clock.now() + timedelta(minutes=10, seconds=1)
            )
        )
    ).intent
    assert waiting.status is short.status is IntentStatus.QUEUED
    release = ReleaseDueIntentsHandler(lambda: uow, w.decider)
    assert await release(ReleaseDueIntents()) == 0  # nothing due yet
    w.clock.set(cooling.cooldown_until + timedelta(seconds=2))
    assert await release(ReleaseDueIntents()) == 2
    assert uow.intents.rows[waiting.id].status is IntentStatus.APPROVED
    assert uow.intents.rows[short.id].status is IntentStatus.DROPPED
    assert len(uow.events_of(IntentQueued)) == 2 and len(uow.events_of(IntentDropped)) == 1


def report_sent(uow: FakeGateUnitOfWork, w: World, intent_id: str) -> Awaitable[bool]:
    return _only(record(uow, sent(w, intent_id)))


def report_failed(
    uow: FakeGateUnitOfWork, w: World, intent_id: str, organization_id: str = ORG
) -> Awaitable[bool]:
    return _only(record(uow, failed(w, intent_id, organization_id)))


async def _only(changes: Awaitable[list[bool]]) -> bool:
    (changed,) = await changes
    return changed


async def test_execution_reports_move_approved_intents_to_sent_or_failed(w, uow):
    w.add(phase=WarmupPhase.STABLE)
    submit = submitter(w, uow)
    a = (await submit(submit_command(target_value="+5511900000001"))).intent
    w.clock.advance(seconds=10)
    b = (await submit(submit_command(target_value="+5511900000002"))).intent
    async with uow:
        assert await report_sent(uow, w, a.id)
        assert not await report_sent(uow, w, a.id)
        assert await report_failed(uow, w, b.id)
        await uow.commit()
    assert uow.intents.rows[a.id].status is IntentStatus.SENT
    assert uow.intents.rows[b.id].status is IntentStatus.FAILED
    assert len(uow.events_of(IntentSent)) == 1


async def test_execution_reports_an_intent_cannot_take_are_logged_and_change_nothing(w, uow, caplog):
    pending = (await creator(w, uow)(create_command())).intent
    async with uow:
        assert not await report_sent(uow, w, pending.id)
        assert not await report_failed(uow, w, pending.id, organization_id="org-other")
        await uow.commit()
    assert uow.intents.rows[pending.id].status is IntentStatus.PENDING
    assert [r.getMessage() for r in caplog.records] == [
        "sent report that its intent cannot take",
        "failure report for an unknown intent",
    ]


async def test_a_batch_of_reports_is_read_once_and_applied_in_order_as_one_by_one(w, uow, caplog):
    w.add(phase=WarmupPhase.STABLE)
    submit = submitter(w, uow)
    a = (await submit(submit_command(target_value="+5511900000001"))).intent
    w.clock.advance(seconds=10)
    b = (await submit(submit_command(target_value="+5511900000002"))).intent
    pending = (await creator(w, uow)(create_command())).intent
    async with uow:
        changed = await record(
            uow,
            sent(w, a.id),
            failed(w, b.id),
            sent(w, a.id),  # a redelivered report: already SENT
            failed(w, a.id),  # from another instance than a's: no job of a's made it
            sent(w, b.id),  # after b's failure: never brings it back
            sent(w, "unknown-intent"),
            sent(w, b.id, organization_id="org-other"),  # someone else's intent is unknown here
            sent(w, pending.id),
        )
        await uow.commit()
    assert changed == [True, True, False, False, False, False, False, False]
    assert uow.intents.reads_of_many == 1
    assert uow.intents.rows[a.id].status is IntentStatus.SENT
    assert uow.intents.rows[b.id].status is IntentStatus.FAILED
    assert uow.intents.rows[pending.id].status is IntentStatus.PENDING
    assert len(uow.events_of(IntentSent)) == 1 and len(uow.events_of(IntentFailed)) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "failure report that its intent cannot take",
        "sent report for an unknown intent",
        "sent report for an unknown intent",
        "sent report that its intent cannot take",
    ]


async def test_a_sent_message_that_fails_afterwards_fails_its_intent_whatever_the_order(w, uow, caplog):
    """WhatsApp may refuse a message after the provider accepted it (a 463 in an ERROR ack): the Executor
    then reports a failure for the job it had reported sent. Both orders end FAILED, without a warning."""
    w.add(phase=WarmupPhase.STABLE)
    submit = submitter(w, uow)
    a = (await submit(submit_command(target_value="+5511900000001"))).intent
    w.clock.advance(seconds=10)
    b = (await submit(submit_command(target_value="+5511900000002"))).intent

    def timelocked(intent: MessageIntent) -> MessageFailedReport:
        """The failure report of the intent's own job, on the instance it was approved for."""
        assert intent.decided_by_instance_id is not None
        report = failed(w, intent.id)
        return dataclasses.replace(
            report, instance_id=intent.decided_by_instance_id, error_class="RESTRICTED", error_code="463"
        )

    async with uow:
        in_order = await record(uow, sent(w, a.id), timelocked(a))
        reversed_ = await record(uow, timelocked(b), sent(w, b.id))
        again = await record(uow, timelocked(a), sent(w, a.id))
        await uow.commit()
    assert (in_order, reversed_, again) == ([True, True], [True, False], [False, False])
    assert uow.intents.rows[a.id].status is uow.intents.rows[b.id].status is IntentStatus.FAILED
    assert [e.error_code for e in uow.events_of(IntentFailed)] == ["463", "463"]
    assert len(uow.events_of(IntentSent)) == 1
    assert caplog.records == []


async def test_projection_updates_reach_memory_and_the_durable_copy(w, uow):
    updater = ProjectionUpdater(w.projection, w.clock, FakeInstanceArrivals())
    state = instance()
    async with uow:
        assert await updater.instance_changed(uow, state)
        assert not await updater.instance_changed(uow, state)  # same version: stale
        assert await updater.reputation_evaluated(
            uow,
            state.instance_id,
            Reputation(
                score=20,
                health=HealthStatus.UNHEALTHY,
                phase=WarmupPhase.STABLE,
                cooldown_until=None,
                version=1,
            ),
        )
        control = ExecutionControl(
            organization_id=ORG,
            scope=ControlScope.ORGANIZATION,
            scope_id=ORG,
            paused=True,
            paused_until=None,
            version=1,
            updated_at=w.clock.now(),
        )
        assert await updater.control_changed(uow, control)
        assert await updater.plan_changed(
            uow, Plan(organization_id=ORG, daily_cap=5, monthly_cap=0, version=1)
        )
        await uow.commit()
    assert uow.projections.instances[state.instance_id].health is HealthStatus.UNHEALTHY
    assert w.projection.paused_scope(ORG, "", w.clock.now()) is ControlScope.ORGANIZATION
    assert uow.projections.plans[ORG].daily_cap == 5


async def test_rebuild_applies_every_instance_from_the_source(w, uow):
    states = [instance() for _ in range(5)]

    class Source:
        async def instance_states(self):
            for state in states:
                yield (
                    state,
                    Reputation(
                        score=90,
                        health=HealthStatus.HEALTHY,
                        phase=WarmupPhase.STABLE,
                        cooldown_until=None,
                        version=2,
                    ),
                )

    rebuild = RebuildProjectionsHandler(
        lambda: uow, ProjectionUpdater(w.projection, w.clock, FakeInstanceArrivals())
    )
    assert await rebuild.from_instances(Source(), batch=2) == 5
    assert w.projection.pool_size(ORG, Purpose.DISPATCH) == 5
    assert all(w.projection.instances[s.instance_id].phase is WarmupPhase.STABLE for s in states)


async def test_a_decision_that_loses_its_intent_to_a_concurrent_one_gives_its_slot_back(w, uow):
    w.add(phase=WarmupPhase.STABLE)
    created = await creator(w, uow)(create_command())

    class RacedUnitOfWork(FakeGateUnitOfWork):
        """Another replica decided the same intent and committed first."""

        async def commit(self) -> None:
            raise FailedPrecondition("the intent changed since it was read")

    raced = RacedUnitOfWork()
    raced._committed = uow._committed
    with pytest.raises(FailedPrecondition):
        await DecideIntentHandler(lambda: raced, w.decider)(DecideIntent(ORG, created.intent.id))
    usage = await w.rates.snapshot(ORG, created.intent.target.value, [], w.clock.now())
    assert usage.org_day == 0  # reserved by the loser, then released


async def test_a_submit_that_loses_the_key_to_another_replica_gives_its_slot_back(w, uow):
    w.add(phase=WarmupPhase.STABLE)
    replica_a, replica_b = submitter(w, uow), submitter(w, uow)  # separate in-process key caches
    first = await replica_a(submit_command("k-9"))
    usage_before = (await w.rates.snapshot(ORG, first.intent.target.value, [], w.clock.now())).org_day
    w.clock.advance(seconds=30)
    late = await replica_b(submit_command("k-9"))
    assert late.replayed and late.intent.id == first.intent.id
    usage_after = (await w.rates.snapshot(ORG, first.intent.target.value, [], w.clock.now())).org_day
    assert usage_after == usage_before == 1  # reserved by the loser, then released
    assert len(uow.events_of(IntentApproved)) == 1


@pytest.mark.parametrize(
    "failure",
    [
        RefusedByStore.of("campaign_id", "must not contain a NUL character"),
        ConnectionResetError("store down"),
    ],
    ids=["refused", "unreachable"],
)
async def test_a_submit_whose_intent_is_not_stored_gives_its_slot_back(w, failure):
    w.add(phase=WarmupPhase.STABLE)

    class FailingUnitOfWork(FakeGateUnitOfWork):
        async def commit(self) -> None:
            raise failure

    with pytest.raises(type(failure)):
        await submitter(w, FailingUnitOfWork())(submit_command("k-1"))
    usage = await w.rates.snapshot(ORG, "5511987654321", [], w.clock.now())
    assert usage.org_day == 0  # approved and reserved, then released when the store failed


async def test_an_arriving_instance_releases_the_intents_of_its_organization_waiting_for_one(w, uow):
    arrivals = FakeInstanceArrivals()
    updater = ProjectionUpdater(w.projection, w.clock, arrivals)
    waiting = (await submitter(w, uow)(submit_command())).intent
    assert (waiting.status, waiting.status_reason) == (
        IntentStatus.QUEUED,
        DecisionReason.NO_ELIGIBLE_INSTANCE,
    )
    decide_awaiting = DecideAwaitingIntentsHandler(lambda: uow, w.decider)
    assert await decide_awaiting(DecideAwaitingIntents("org-other")) == 0
    w.clock.advance(seconds=0.2)
    async with uow:
        assert await updater.instance_changed(uow, instance())
        await uow.commit()
    assert arrivals.organizations == [ORG]
    assert await decide_awaiting(DecideAwaitingIntents(ORG)) == 1
    assert uow.intents.rows[waiting.id].status is IntentStatus.APPROVED
    assert await decide_awaiting(DecideAwaitingIntents(ORG)) == 0  # nothing waits any more


async def test_the_scheduler_decides_an_organizations_waiting_intents_as_soon_as_an_instance_arrives():
    decided: list[str] = []

    async def decide_awaiting(command: DecideAwaitingIntents) -> int:
        decided.append(command.organization_id)
        return 0

    async def release_due(command: ReleaseDueIntents) -> int:
        return 0

    scheduler = QueuedIntentScheduler(release_due, decide_awaiting, interval=60, batch_size=10)
    stop = asyncio.Event()
    running = asyncio.create_task(scheduler.run(stop))
    await asyncio.sleep(0.01)  # first pass done: the scheduler sleeps for its (long) interval
    scheduler.arrived(ORG)
    for _ in range(100):
        if decided:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await running
    assert decided == [ORG]  # at once, not a minute later; looked at again on the next pass only
