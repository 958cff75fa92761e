"""Reputation kept up to date from signals, through hand-written fakes (no I/O): a restriction cools the
number in the transaction that records it, other signals wait for a debounced evaluation of the windows,
the periodic pass ends cooldowns, and an event goes out only when something another context sees changed
(never one per signal, never twice for the same fact)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.message import Message

from libs.rpc.convert import to_timestamp
from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import InvalidArgument, NotFound
from libs.seedwork.ids import new_id
from libs.seedwork.pagination import PageRequest
from libs.seedwork.shared_kernel import ConnectionState, Provider, Purpose
from libs.stores import StoreOutages
from reputation_service.application.record_signals import RecordSignalsHandler
from reputation_service.application.register_instance import RegisterInstance, RegisterInstanceHandler
from reputation_service.application.reputation_policy import OrganizationPolicies
from reputation_service.application.reputation_queries import (
    GetReputation,
    GetReputationHandler,
    ListReputations,
    ListReputationsHandler,
    ReputationCensusHandler,
)
from reputation_service.application.reputation_updates import (
    EvaluateDue,
    EvaluateDueHandler,
    EvaluationSchedule,
    Outcome,
    ReputationUpdater,
)
from reputation_service.application.window_counts import CountingPolicy, WindowCountsReader
from reputation_service.domain.evaluation import CooldownReason, HealthStatus, RestrictionKind
from reputation_service.domain.events import CooldownStarted, InstanceRegistered, ReputationEvaluated
from reputation_service.domain.ports import ReputationFilter
from reputation_service.domain.warmup import WarmupPhase
from reputation_service.entrypoints.consumers import ExecutorEventSignals, ProviderEventSignals
from reputation_service.entrypoints.workers import ReputationEvaluator, count_outcomes
from reputation_service.infrastructure import metrics
from reputation_service.infrastructure.proto_mapping import event_to_proto, explanation_to_proto
from tests.reputation_service.unit.fakes import FakeReputationUnitOfWork
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import executor_events_pb2, provider_events_pb2, reputation_events_pb2
from whatlead.executor.v1 import executor_pb2
from whatlead.reputation.v1 import reputation_pb2

ORG, OTHER_ORG = "org-acme", "org-other"
START = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
DEBOUNCE = timedelta(seconds=10)
AGING = timedelta(hours=1)
PT = provider_events_pb2


class Harness:
    """Registration, both consumers, the evaluator's use case and the reads over one fake store."""

    def __init__(
        self,
        policies: OrganizationPolicies | None = None,
        *,
        clock: FakeClock | None = None,
        uow: FakeReputationUnitOfWork | None = None,
    ) -> None:
        self.clock = clock or FakeClock(START)
        self.uow = uow or FakeReputationUnitOfWork(self.clock)
        reader = WindowCountsReader(
            self.clock, CountingPolicy(minute_horizon=timedelta(days=8), ack_timeout=timedelta(minutes=15))
        )
        self.outcomes: list[Outcome] = []
        self.updater = ReputationUpdater(
            self.clock, policies or OrganizationPolicies(), reader, on_outcomes=self._outcomes
        )
        record = RecordSignalsHandler(self.clock)
        self.providers = ProviderEventSignals(record, self.clock, self.updater)
        self.executor = ExecutorEventSignals(record, self.clock, self.updater)
        self.register_handler = RegisterInstanceHandler(lambda: self.uow, self.clock, self.updater)
        self.schedule = EvaluationSchedule(debounce=DEBOUNCE, aging=AGING, batch_size=50)
        self.due = EvaluateDueHandler(lambda: self.uow, self.clock, self.updater, self.schedule)

    def _outcomes(self, outcomes: Sequence[Outcome], committed: bool) -> None:
        if committed:
            self.outcomes.extend(outcomes)

    async def register(self, organization: str = ORG) -> str:
        instance = await self.register_handler(
            RegisterInstance(
                organization_id=organization,
                display_name="Sales",
                provider=Provider.WAHA,
                provider_instance_ref=f"sales-{new_id()}",
                phone="5511987654321",
                purposes=frozenset({Purpose.DISPATCH}),
                connection_state=ConnectionState.CONNECTED,
            )
        )
        return instance.id

    async def ingest(self, *events: Message) -> None:
        """One transaction per batch, as a consumer applies it."""
        async with self.uow as uow:
            for event in events:
                handler = self.providers if isinstance(event, PT.ProviderEventReceived) else self.executor
                await handler(event, uow)
            await uow.commit()

    async def evaluate_dirty(self) -> int:
        return await self.due(EvaluateDue(dirty_only=True))

    def events(self, kind: type) -> list[Any]:
        return self.uow.events_of(kind)

    def state(self, instance_id: str):
        return self.uow.reputations.rows[instance_id].reputation.state

    def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)

    def restarted(self) -> Harness:
        """A new process over the same database (and time)."""
        return Harness(clock=self.clock, uow=self.uow)


@pytest.fixture
def h() -> Harness:
    return Harness()


def _meta(organization: str = "") -> common_pb2.EventMeta:
    return common_pb2.EventMeta(
        event_id=new_id(), organization_id=organization, occurred_at=to_timestamp(START)
    )


def executor_463(instance_id: str, job_id: str | None = None) -> executor_events_pb2.MessageFailed:
    return executor_events_pb2.MessageFailed(
        meta=_meta(ORG),
        job_id=job_id or new_id(),
        intent_id=new_id(),
        instance_id=instance_id,
        provider=common_pb2.PROVIDER_WAHA,
        error=executor_pb2.JobError(
            error_class=executor_pb2.ERROR_CLASS_RESTRICTED,
            code="reachout_timelock",
            restriction_kind=common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK,
        ),
        attempts=1,
        failed_at=to_timestamp(START),
    )


def provider_event(
    instance_id: str, kind: PT.ProviderEventType.ValueType, message_id: str = "", **fields: Any
) -> PT.ProviderEventReceived:
    return PT.ProviderEventReceived(
        meta=_meta(),
        type=kind,
        provider=common_pb2.PROVIDER_WAHA,
        instance_id=instance_id,
        provider_instance_ref="sales-1",
        provider_message_id=message_id,
        from_me=bool(message_id),
        occurred_at=to_timestamp(fields.pop("at", START)),
        origin=PT.PROVIDER_EVENT_ORIGIN_WEBHOOK,
        **fields,
    )


def sent(instance_id: str, message_id: str, at: datetime) -> executor_events_pb2.MessageSent:
    return executor_events_pb2.MessageSent(
        meta=_meta(ORG),
        job_id=new_id(),
        intent_id=new_id(),
        instance_id=instance_id,
        provider=common_pb2.PROVIDER_WAHA,
        provider_message_id=message_id,
        attempts=1,
        sent_at=to_timestamp(at),
    )


# --- registration -------------------------------------------------------------------------------------------


async def test_a_new_number_starts_newborn_and_the_gate_hears_it_right_after_its_registration(h: Harness):
    instance = await h.register()

    state = h.state(instance)
    assert (state.phase, state.health, state.score, state.version) == (
        WarmupPhase.NEWBORN,
        HealthStatus.HEALTHY,
        70,
        1,
    )
    kinds = [type(e) for e in h.uow.committed_events]
    assert kinds == [InstanceRegistered, ReputationEvaluated]
    announced = event_to_proto(h.events(ReputationEvaluated)[0])
    assert isinstance(announced, reputation_events_pb2.ReputationEvaluated)
    assert announced.reputation.phase == reputation_pb2.WARMUP_PHASE_NEWBORN
    assert announced.reputation.version == 1  # the Gate applies versions above what it knows (0)
    assert announced.previous_phase == reputation_pb2.WARMUP_PHASE_UNSPECIFIED  # nothing before


async def test_an_organization_may_start_its_numbers_in_another_phase():
    h = Harness(OrganizationPolicies.from_overrides({}, {ORG: {"initial_phase": "interacting"}}))

    mine, theirs = await h.register(ORG), await h.register(OTHER_ORG)

    assert h.state(mine).phase is WarmupPhase.INTERACTING
    assert h.state(theirs).phase is WarmupPhase.NEWBORN


# --- restrictions at once ----------------------------------------------------------------------------------


async def test_a_463_cools_the_number_in_the_transaction_that_records_it(h: Harness):
    instance = await h.register()
    h.uow.committed_events.clear()

    await h.ingest(executor_463(instance))

    [started] = h.events(CooldownStarted)
    assert started.cooldown.reason is CooldownReason.REACHOUT_TIMELOCK
    assert started.cooldown.until == START + timedelta(minutes=30)  # the first step of the default ladder
    [evaluated] = h.events(ReputationEvaluated)
    assert evaluated.state.cooldown_until == START + timedelta(minutes=30)
    assert evaluated.previous_score == 70 and evaluated.state.score < 70
    announced = event_to_proto(started)
    assert isinstance(announced, reputation_events_pb2.CooldownStarted)
    assert announced.restriction_kind == common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK
    assert announced.reason == reputation_pb2.COOLDOWN_REASON_REACHOUT_TIMELOCK
    # No evaluation ran for it: the restriction did not wait for the debounced pass.
    assert [o.trigger for o in h.outcomes] == ["registered", "restriction"]


async def test_the_same_463_reported_again_twice_or_by_the_webhook_too_starts_nothing_more(h: Harness):
    instance = await h.register()
    failure = executor_463(instance)
    await h.ingest(failure)
    h.uow.committed_events.clear()
    before = h.state(instance)

    await h.ingest(failure)  # redelivered
    await h.ingest(  # the provider's webhook about the same refusal: another fact, the same episode
        provider_event(instance, PT.PROVIDER_EVENT_TYPE_MESSAGE_FAILED, "true_55@c.us_ABC", error_code="463")
    )
    h.advance(timedelta(minutes=5))
    await h.ingest(executor_463(instance))  # a later 463 of the same burst, while it cools

    assert h.uow.committed_events == []
    assert h.state(instance).cooldown_until == before.cooldown_until


@pytest.mark.parametrize("webhook_first", [True, False])
async def test_one_463_reported_by_the_webhook_and_the_executor_in_either_order_cools_once(
    h: Harness, webhook_first: bool
):
    instance = await h.register()
    reports = [
        provider_event(instance, PT.PROVIDER_EVENT_TYPE_MESSAGE_FAILED, "true_55@c.us_XYZ", error_code="463"),
        executor_463(instance),
    ]
    for report in reports if webhook_first else reversed(reports):
        await h.ingest(report)

    [started] = h.events(CooldownStarted)
    assert started.cooldown.step == 0 and started.cooldown.until == START + timedelta(minutes=30)
    assert len(h.events(ReputationEvaluated)) == 2  # the registration's, and the cooldown's


async def test_a_463_after_the_cooldown_ended_cools_for_longer(h: Harness):
    instance = await h.register()
    await h.ingest(executor_463(instance))
    h.advance(timedelta(minutes=31))

    await h.ingest(executor_463(instance))

    second = h.events(CooldownStarted)[-1].cooldown
    assert second.step == 1 and second.until == START + timedelta(minutes=31) + timedelta(hours=2)


async def test_the_providers_own_end_of_a_timelock_is_never_cut_short(h: Harness):
    instance = await h.register()
    until = START + timedelta(hours=6)

    await h.ingest(
        provider_event(
            instance, PT.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCKED, timelock_until=to_timestamp(until)
        )
    )

    assert h.events(CooldownStarted)[0].cooldown.until == until


async def test_a_ban_webhook_makes_the_number_unhealthy_for_good(h: Harness):
    instance = await h.register()
    h.uow.committed_events.clear()

    await h.ingest(provider_event(instance, PT.PROVIDER_EVENT_TYPE_INSTANCE_BANNED, ban_code="406"))

    [evaluated] = h.events(ReputationEvaluated)
    assert evaluated.state.health is HealthStatus.UNHEALTHY and evaluated.state.score == 0
    assert h.events(CooldownStarted) == []  # not waited out: never chosen again
    # The windows' evaluation later keeps it so.
    h.advance(DEBOUNCE)
    await h.evaluate_dirty()
    assert h.state(instance).health is HealthStatus.UNHEALTHY


async def test_a_temporary_ban_cools_the_number_and_its_warm_up_starts_over():
    h = Harness(OrganizationPolicies.from_overrides({"initial_phase": "STABLE"}, {}))
    instance = await h.register()

    await h.ingest(
        provider_event(
            instance,
            PT.PROVIDER_EVENT_TYPE_INSTANCE_BANNED,
            restriction_kind=common_pb2.RESTRICTION_KIND_TEMPORARY_BAN,
        )
    )

    [started] = h.events(CooldownStarted)
    assert started.cooldown.reason is CooldownReason.TEMPORARY_BAN
    assert started.cooldown.restriction is RestrictionKind.TEMPORARY_BAN
    assert h.state(instance).phase is WarmupPhase.NEWBORN


# --- debounced evaluation ----------------------------------------------------------------------------------


async def test_signals_wait_for_one_debounced_evaluation_and_nothing_is_announced_if_nothing_changed(
    h: Harness,
):
    instance = await h.register()
    h.uow.committed_events.clear()
    for n in range(5):
        await h.ingest(provider_event(instance, PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, f"m-{n}"))

    assert h.outcomes[-1].trigger == "registered"  # nothing evaluated per signal
    assert await h.evaluate_dirty() == 0  # evaluated at registration, less than the debounce ago
    h.advance(DEBOUNCE)
    assert await h.evaluate_dirty() == 1
    assert await h.evaluate_dirty() == 0  # once for all five

    # Five receipts of unknown sends move nothing another context sees: no event, no explanation stored.
    assert h.uow.committed_events == []
    assert h.uow.reputations.rows[instance].reputation.explanation is None
    assert h.state(instance).version == 2


async def test_a_delivery_drop_in_the_windows_cools_the_number_and_costs_it_a_phase():
    h = Harness(OrganizationPolicies.from_overrides({"initial_phase": "INTERACTING"}, {}))
    instance = await h.register()
    h.uow.committed_events.clear()
    # 30 sends in the last hour, 5 delivered: a delivery ratio far under the pause level (0.5).
    for n in range(30):
        await h.ingest(sent(instance, f"m-{n}", START - timedelta(minutes=30)))
    for n in range(5):
        await h.ingest(provider_event(instance, PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, f"m-{n}"))
    h.advance(DEBOUNCE)

    await h.evaluate_dirty()

    [started] = h.events(CooldownStarted)
    assert started.cooldown.reason is CooldownReason.DEGRADATION
    [evaluated] = h.events(ReputationEvaluated)
    assert evaluated.state.phase is WarmupPhase.WARMING
    assert evaluated.previous_phase is WarmupPhase.INTERACTING
    explanation = h.uow.reputations.rows[instance].reputation.explanation
    assert explanation is not None
    proto = explanation_to_proto(explanation)
    assert sum(term.contribution for term in proto.terms) == proto.score == evaluated.state.score
    drop = [
        c
        for c in proto.alert_checks
        if c.alert == reputation_pb2.REPUTATION_ALERT_DELIVERY_DROP and c.window == "HOUR"
    ]
    assert drop[0].level == reputation_pb2.ALERT_LEVEL_PAUSE and drop[0].measured == pytest.approx(5 / 30)
    assert proto.phase.change == reputation_pb2.PHASE_CHANGE_REGRESSED
    assert proto.cooldown.reason == reputation_pb2.COOLDOWN_REASON_DEGRADATION


async def test_a_restart_that_replays_the_streams_announces_nothing_twice(h: Harness):
    instance = await h.register()
    history = [
        executor_463(instance),
        provider_event(instance, PT.PROVIDER_EVENT_TYPE_CONNECTION_DISCONNECTED, at=START),
    ]
    await h.ingest(*history)
    h.advance(DEBOUNCE)
    await h.evaluate_dirty()
    h.uow.committed_events.clear()

    restarted = h.restarted()
    await restarted.ingest(*history)  # replayed from the streams' start: every fact known already
    h.advance(DEBOUNCE)
    assert await restarted.evaluate_dirty() == 0
    await restarted.ingest(provider_event(instance, PT.PROVIDER_EVENT_TYPE_CONNECTION_CONNECTED, at=START))
    h.advance(DEBOUNCE)
    assert await restarted.evaluate_dirty() == 1  # the same windows: the same state

    assert h.uow.committed_events == []


# --- the periodic pass -------------------------------------------------------------------------------------


async def test_the_periodic_pass_ends_a_cooldown_and_refreshes_the_gauges(h: Harness):
    instance, other = await h.register(), await h.register(OTHER_ORG)
    await h.ingest(
        executor_463(instance),
        provider_event(other, PT.PROVIDER_EVENT_TYPE_CONNECTION_CONNECTED),  # due for its windows
    )
    evaluator = ReputationEvaluator(
        EvaluateDueHandler(lambda: h.uow, h.clock, h.updater, replace(h.schedule, batch_size=1)),
        ReputationCensusHandler(lambda: h.uow),
        poll=1,
        interval=60,
        batch_size=1,
        outages=StoreOutages("reputation"),
    )
    h.uow.committed_events.clear()

    h.advance(timedelta(minutes=31))
    assert await evaluator.periodic_pass() == 2  # batches of one, until fewer than a batch are due

    [evaluated] = h.events(ReputationEvaluated)
    assert evaluated.aggregate_id == instance
    assert evaluated.state.cooldown_until is None and evaluated.state.cooldown_reason is None
    assert h.events(CooldownStarted) == []  # the time-lock is in the hour's window, but answered already
    assert metrics.INSTANCES_BY_PHASE.labels("NEWBORN")._value.get() == 2
    assert metrics.INSTANCES_BY_PHASE.labels("STABLE")._value.get() == 0
    assert sum(metrics.INSTANCES_BY_HEALTH.labels(h.value)._value.get() for h in HealthStatus) == 2


async def test_a_silent_number_is_evaluated_again_once_it_has_aged(h: Harness):
    instance = await h.register()
    assert await h.due(EvaluateDue(dirty_only=False)) == 0

    h.advance(AGING)

    assert await h.due(EvaluateDue(dirty_only=False)) == 1
    assert h.state(instance).evaluated_at == START + AGING


async def test_outcomes_are_counted_once_committed_by_trigger_and_cooldown_reason(h: Harness):
    def value(counter: Any, *labels: str) -> float:
        return float(counter.labels(*labels)._value.get())

    restrictions = value(metrics.EVALUATIONS, "restriction", "true")
    cooldowns = value(metrics.COOLDOWNS_STARTED, "REACHOUT_TIMELOCK")
    instance = await h.register()
    await h.ingest(executor_463(instance))

    count_outcomes(h.outcomes, committed=True)
    count_outcomes(h.outcomes, committed=False)

    assert value(metrics.EVALUATIONS, "restriction", "true") == restrictions + 1
    assert value(metrics.COOLDOWNS_STARTED, "REACHOUT_TIMELOCK") == cooldowns + 1


# --- reads -------------------------------------------------------------------------------------------------


async def test_reputations_are_read_within_their_organization_and_filtered_by_health_and_phase(h: Harness):
    healthy, banned, theirs = await h.register(), await h.register(), await h.register(OTHER_ORG)
    await h.ingest(provider_event(banned, PT.PROVIDER_EVENT_TYPE_INSTANCE_BANNED))
    get = GetReputationHandler(lambda: h.uow)
    listed = ListReputationsHandler(lambda: h.uow)

    assert (await get(GetReputation(organization_id=ORG, instance_id=banned))).explanation is not None
    with pytest.raises(NotFound):
        await get(GetReputation(organization_id=ORG, instance_id=theirs))
    with pytest.raises(InvalidArgument):
        await get(GetReputation(organization_id=ORG, instance_id="not-an-id"))

    page = PageRequest(after_id=None, size=50)
    everything = await listed(ListReputations(organization_id=ORG, page=page))
    unhealthy = await listed(
        ListReputations(organization_id=ORG, page=page, where=ReputationFilter(health=HealthStatus.UNHEALTHY))
    )
    stable = await listed(
        ListReputations(organization_id=ORG, page=page, where=ReputationFilter(phase=WarmupPhase.STABLE))
    )
    assert {r.instance_id for r in everything.items} == {healthy, banned}
    assert [r.instance_id for r in unhealthy.items] == [banned]
    assert stable.items == []


# --- thresholds per organization ---------------------------------------------------------------------------


def test_thresholds_are_overridden_per_organization_on_top_of_every_organizations_defaults():
    policies = OrganizationPolicies.from_overrides(
        {"degraded_below": 60}, {ORG: {"timelock_cooldowns": [5, 10], "delivery_drop": {"review": 0.9}}}
    )

    mine, theirs = policies.of(ORG).thresholds, policies.of(OTHER_ORG).thresholds
    assert mine.degraded_below == theirs.degraded_below == 60
    assert mine.timelock_cooldowns.steps == (timedelta(seconds=5), timedelta(seconds=10))
    assert mine.delivery_drop.review == 0.9 and mine.delivery_drop.pause == 0.5
    assert theirs.timelock_cooldowns.steps[0] == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"no_such_threshold": 1}, "thresholds.no_such_threshold"),
        ({"initial_phase": "ADULT"}, "thresholds.initial_phase"),
        ({"delivery_drop": {"review": 0.5, "pause": 0.8}}, "thresholds.delivery_drop.pause"),
        ({"delivery_drop": {"level": 1}}, "thresholds.delivery_drop"),
        ({"degradation_cooldowns": [60]}, "thresholds.degradation_cooldowns"),
    ],
)
def test_thresholds_the_evaluation_would_refuse_are_refused_at_start(overrides: dict, field: str):
    with pytest.raises(InvalidArgument) as refused:
        OrganizationPolicies.from_overrides(overrides, {})

    assert field in [v.field for v in refused.value.violations]
