"""The decision: outcomes, reasons, timing, sticky sender and scoring (fake rate store, fake clock)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from gate_service.domain.decision import DecisionOutcome, DecisionReason, Verdict
from gate_service.domain.events import IntentApproved
from gate_service.domain.gate import DecisionPlan, RankedCandidate
from gate_service.domain.intent import IntentStatus, ReactionPayload
from gate_service.domain.policies import (
    ContactPolicy,
    GatePolicies,
    HealthStatus,
    WarmupPhase,
    phase_policies_with,
)
from gate_service.domain.projection import InstanceState, Plan
from gate_service.domain.rates import InstanceUsage
from gate_service.domain.scoring import InstanceDispatchScoreService, ScoreInput
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.shared_kernel import ConnectionState, ControlScope, MessageType, Purpose, TargetKind
from tests.gate_service.unit.support import ORG, World, instance

LOOSE_CONTACT = ContactPolicy(min_gap=timedelta(0), per_hour=0)


def world(**policy_overrides: Any) -> World:
    return World(GatePolicies(contact=LOOSE_CONTACT, **policy_overrides))


async def test_approved_through_a_connected_healthy_instance_with_the_full_record():
    w = world()
    chosen = w.add(phase=WarmupPhase.STABLE)
    intent = w.intent()
    record = await w.decide(intent)
    assert record.outcome is DecisionOutcome.APPROVED
    assert intent.status is IntentStatus.APPROVED and intent.decided_by_instance_id == chosen.instance_id
    [verdict] = record.candidates
    assert verdict.verdict is Verdict.ALLOW and verdict.score > 0 and verdict.phase is WarmupPhase.STABLE
    approved = intent.pull_events()[-1]
    assert isinstance(approved, IntentApproved)
    assert approved.instance.provider_instance_ref == chosen.provider_instance_ref


async def test_queued_by_cooldown_until_the_cooldown_ends():
    w = world()
    cooling = w.add(phase=WarmupPhase.STABLE, cooldown=timedelta(minutes=30))
    intent = w.intent()
    record = await w.decide(intent)
    assert record.outcome is DecisionOutcome.QUEUED and record.reason is DecisionReason.COOLDOWN_ACTIVE
    assert intent.queued_until == cooling.cooldown_until


async def test_queued_by_a_full_minute_window_until_the_next_minute():
    policies = phase_policies_with({"STABLE": {"per_minute": 2, "min_interval_seconds": 0}})
    w = world(phases=policies)
    w.add(phase=WarmupPhase.STABLE)
    outcomes = [(await w.decide(w.intent(target_value=f"+551198765432{n}"))) for n in range(3)]
    assert [r.outcome for r in outcomes] == [DecisionOutcome.APPROVED] * 2 + [DecisionOutcome.QUEUED]
    assert outcomes[2].reason is DecisionReason.RATE_LIMIT
    now = w.clock.now()
    assert outcomes[2].queued_until == now.replace(second=0, microsecond=0) + timedelta(minutes=1)


async def test_queued_by_the_phase_minimum_interval_until_it_has_passed():
    w = world(phases=phase_policies_with({"STABLE": {"min_interval_seconds": 20}}))
    w.add(phase=WarmupPhase.STABLE)
    first = await w.decide(w.intent(target_value="+5511900000001"))
    w.clock.advance(seconds=5)
    second = await w.decide(w.intent(target_value="+5511900000002"))
    assert first.outcome is DecisionOutcome.APPROVED
    assert second.reason is DecisionReason.MIN_INTERVAL
    assert second.queued_until == first.decided_at + timedelta(seconds=20)


async def test_per_contact_gap_and_hourly_cap():
    w = World(
        GatePolicies(
            contact=ContactPolicy(min_gap=timedelta(seconds=6), per_hour=2),
            phases=phase_policies_with({"STABLE": {"min_interval_seconds": 0}}),
        )
    )
    w.add(phase=WarmupPhase.STABLE)
    first = await w.decide(w.intent())
    soon = await w.decide(w.intent())
    assert first.outcome is DecisionOutcome.APPROVED
    assert (soon.reason, soon.queued_until) == (
        DecisionReason.CONTACT_MIN_INTERVAL,
        first.decided_at + timedelta(seconds=6),
    )
    w.clock.advance(seconds=6)
    assert (await w.decide(w.intent())).outcome is DecisionOutcome.APPROVED
    w.clock.advance(seconds=6)
    capped = await w.decide(w.intent())
    assert capped.reason is DecisionReason.CONTACT_RATE_LIMIT
    assert capped.queued_until == w.clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(
        hours=1
    )


async def test_not_before_queues_until_then():
    w = world()
    w.add(phase=WarmupPhase.STABLE)
    later = w.clock.now() + timedelta(hours=1)
    intent = w.intent(purpose=Purpose.SCHEDULE, not_before=later)
    record = await w.decide(intent)
    assert (record.outcome, record.reason, intent.queued_until) == (
        DecisionOutcome.QUEUED,
        DecisionReason.NOT_BEFORE,
        later,
    )


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("disconnected", DecisionReason.INSTANCE_DISCONNECTED),
        ("unhealthy", DecisionReason.INSTANCE_UNHEALTHY),
        ("no_instance", DecisionReason.NO_ELIGIBLE_INSTANCE),
        ("other_purpose", DecisionReason.NO_ELIGIBLE_INSTANCE),
        ("org_paused", DecisionReason.OPS_PAUSED),
        ("campaign_paused", DecisionReason.OPS_PAUSED),
        ("instance_paused", DecisionReason.OPS_PAUSED),
        ("plan_limit", DecisionReason.PLAN_LIMIT),
        ("newborn_dispatch", DecisionReason.PURPOSE_NOT_ALLOWED),
        ("newborn_audio", DecisionReason.TYPE_NOT_ALLOWED_IN_PHASE),
        ("own_phone", DecisionReason.SELF_TARGET),
    ],
)
async def test_blocked_with_the_dominant_reason(setup, reason):
    w = world()
    now = w.clock.now()
    overrides: dict[str, object] = {"campaign_id": "camp-1"}
    match setup:
        case "disconnected":
            w.add(instance(connection=ConnectionState.DISCONNECTED))
        case "unhealthy":
            w.add(phase=WarmupPhase.STABLE, health=HealthStatus.UNHEALTHY)
        case "no_instance":
            pass
        case "other_purpose":
            w.add(instance(purposes=frozenset({Purpose.WARMUP})))
        case "org_paused" | "campaign_paused" | "instance_paused":
            target = w.add(phase=WarmupPhase.STABLE)
            scope, scope_id = {
                "org_paused": (ControlScope.ORGANIZATION, ORG),
                "campaign_paused": (ControlScope.CAMPAIGN, "camp-1"),
                "instance_paused": (ControlScope.INSTANCE, target.instance_id),
            }[setup]
            w.projection.upsert_control(
                ExecutionControl(
                    organization_id=ORG,
                    scope=scope,
                    scope_id=scope_id,
                    paused=True,
                    paused_until=None,
                    version=1,
                    updated_at=now,
                ),
                now,
            )
        case "plan_limit":
            w.add(phase=WarmupPhase.STABLE)
            w.projection.upsert_plan(Plan(organization_id=ORG, daily_cap=1, monthly_cap=0, version=1))
            await w.decide(w.intent(target_value="+5511900000009"))
            w.clock.advance(minutes=1)
        case "own_phone":  # its only instance is the target's own number
            w.add(instance(phone="5511987654321"), phase=WarmupPhase.STABLE)
        case "newborn_dispatch":
            w.add(phase=WarmupPhase.NEWBORN)
        case "newborn_audio":
            w.add(phase=WarmupPhase.NEWBORN)
            overrides.update(
                purpose=Purpose.WARMUP, type=MessageType.REACTION, payload=ReactionPayload("👍", "m1")
            )
            w.policies.phases[WarmupPhase.NEWBORN] = w.policies.phases[WarmupPhase.NEWBORN].__class__(
                **{**vars(w.policies.phases[WarmupPhase.NEWBORN]), "types": frozenset({MessageType.TEXT})}
            )
    intent = w.intent(**overrides)
    w.clock.advance(w.policies.projection_grace)  # past it, no instance at all is BLOCKED too
    record = await w.decide(intent)
    assert record.outcome is DecisionOutcome.BLOCKED
    assert intent.status is IntentStatus.BLOCKED and intent.status_reason is reason


async def test_an_intent_finding_no_instance_at_all_waits_the_projection_grace_then_is_blocked():
    w = world()
    intent = w.intent()
    record = await w.decide(intent)
    grace_end = intent.created_at + w.policies.projection_grace
    assert (record.outcome, record.reason, record.queued_until) == (
        DecisionOutcome.QUEUED,
        DecisionReason.NO_ELIGIBLE_INSTANCE,
        grace_end,
    )
    assert (
        intent.status is IntentStatus.QUEUED and intent.status_reason is DecisionReason.NO_ELIGIBLE_INSTANCE
    )
    w.clock.advance(w.policies.projection_grace)
    again = await w.decide(intent)
    assert (again.outcome, again.reason) == (DecisionOutcome.BLOCKED, DecisionReason.NO_ELIGIBLE_INSTANCE)


async def test_an_intent_waiting_for_its_instance_is_approved_once_the_projection_knows_it():
    w = world()
    intent = w.intent()
    assert (await w.decide(intent)).outcome is DecisionOutcome.QUEUED
    w.clock.advance(seconds=0.2)  # the registry's event arrives
    registered = w.add(phase=WarmupPhase.STABLE)
    record = await w.decide(intent)
    assert record.outcome is DecisionOutcome.APPROVED and record.chosen_instance_id == registered.instance_id


async def test_no_grace_when_the_gate_refuses_an_instance_it_knows():
    w = world()
    w.add(instance(connection=ConnectionState.DISCONNECTED))
    record = await w.decide(w.intent())
    assert (record.outcome, record.reason) == (DecisionOutcome.BLOCKED, DecisionReason.INSTANCE_DISCONNECTED)


async def test_a_zero_grace_blocks_at_once():
    w = world(projection_grace=timedelta(0))
    record = await w.decide(w.intent())
    assert (record.outcome, record.reason) == (DecisionOutcome.BLOCKED, DecisionReason.NO_ELIGIBLE_INSTANCE)


async def test_the_dominant_reason_is_the_most_common_one():
    w = world()
    for _ in range(2):
        w.add(instance(connection=ConnectionState.DISCONNECTED))
    w.add(phase=WarmupPhase.STABLE, health=HealthStatus.UNHEALTHY)
    record = await w.decide(w.intent())
    assert record.reason is DecisionReason.INSTANCE_DISCONNECTED
    assert record.excluded == {DecisionReason.INSTANCE_DISCONNECTED: 2, DecisionReason.INSTANCE_UNHEALTHY: 1}


async def test_sticky_sender_wins_over_a_better_instance():
    w = world(phases=phase_policies_with({"STABLE": {"min_interval_seconds": 0}}))
    first = w.add(phase=WarmupPhase.STABLE, score=60)
    initial = await w.decide(w.intent())
    assert initial.chosen_instance_id == first.instance_id
    better = w.add(phase=WarmupPhase.STABLE, score=100)
    again = await w.decide(w.intent())
    assert again.chosen_instance_id == first.instance_id
    verdicts = {v.instance_id: v for v in again.candidates}
    assert verdicts[first.instance_id].sticky and not verdicts[better.instance_id].sticky
    other = await w.decide(w.intent(target_value="+5511900000077"))
    assert other.chosen_instance_id == better.instance_id  # no history with this target: the best wins


async def test_a_sticky_sender_that_cannot_send_falls_over_to_another_instance():
    w = world()
    first = w.add(phase=WarmupPhase.STABLE)
    await w.decide(w.intent())
    w.reputation(first.instance_id, health=HealthStatus.UNHEALTHY)
    fallback = w.add(phase=WarmupPhase.STABLE)
    record = await w.decide(w.intent())
    assert record.chosen_instance_id == fallback.instance_id
    sticky = next(v for v in record.candidates if v.instance_id == first.instance_id)
    assert sticky.verdict is Verdict.FINAL and sticky.reason is DecisionReason.INSTANCE_UNHEALTHY


def test_scoring_prefers_lower_risk_better_connection_lower_pressure_and_sticky():
    scorer = InstanceDispatchScoreService()
    base: dict[str, Any] = dict(
        reputation_score=80,
        health=HealthStatus.HEALTHY,
        phase=WarmupPhase.STABLE,
        connection_state=ConnectionState.CONNECTED,
        rate_pressure=0.2,
        sticky=False,
    )

    def score(**changes: Any) -> float:
        return scorer.score(ScoreInput(**{**base, **changes}))

    assert score(reputation_score=95) > score()  # lower risk
    assert score(health=HealthStatus.DEGRADED) < score()
    assert score(connection_state=ConnectionState.CONNECTING) < score()
    assert score(rate_pressure=0.9) < score()  # more pressure
    assert score(sticky=True, reputation_score=10, rate_pressure=0.9) > score(
        reputation_score=100, rate_pressure=0
    )


async def test_scoring_order_in_a_decision_lower_pressure_wins_between_equals():
    w = world(phases=phase_policies_with({"STABLE": {"min_interval_seconds": 0, "per_minute": 10}}))
    busy = w.add(phase=WarmupPhase.STABLE)
    idle = w.add(phase=WarmupPhase.STABLE)
    for n in range(5):
        await w.rates.reserve(
            w.gate.reservation(_plan(w, f"+55119000001{n}"), _ranked(w, busy), w.projection)
        )
    record = await w.decide(w.intent(target_value="+5511900000200"))
    assert record.chosen_instance_id == idle.instance_id
    scores = {v.instance_id: v for v in record.candidates}
    assert scores[idle.instance_id].score > scores[busy.instance_id].score
    assert scores[busy.instance_id].rate_pressure == 0.5


def _ranked(w: World, state: InstanceState) -> RankedCandidate:
    return RankedCandidate(state, 0.0, w.policies.caps_for(WarmupPhase.STABLE, HealthStatus.HEALTHY))


def _plan(w: World, target: str) -> DecisionPlan:
    return DecisionPlan(intent=w.intent(target_value=target), now=w.clock.now(), attempt=1)


async def test_a_queued_intent_that_expires_is_dropped_never_approved():
    w = world()
    w.add(phase=WarmupPhase.STABLE, cooldown=timedelta(minutes=10))
    intent = w.intent(expires_at=w.clock.now() + timedelta(minutes=20))
    assert (await w.decide(intent)).outcome is DecisionOutcome.QUEUED
    w.clock.advance(minutes=25)
    record = await w.decide(intent)
    assert record.outcome is DecisionOutcome.DROPPED and intent.status is IntentStatus.DROPPED
    assert intent.status_reason is DecisionReason.EXPIRED and record.attempt == 2


async def test_queued_past_the_validity_is_dropped_at_once():
    w = world()
    w.add(phase=WarmupPhase.STABLE, cooldown=timedelta(hours=2))
    intent = w.intent(expires_at=w.clock.now() + timedelta(minutes=30))
    record = await w.decide(intent)
    assert record.outcome is DecisionOutcome.DROPPED and record.reason is DecisionReason.EXPIRED
    assert record.candidates[0].reason is DecisionReason.COOLDOWN_ACTIVE  # still explains why


async def test_two_concurrent_decisions_never_take_the_same_last_slot():
    w = world(phases=phase_policies_with({"STABLE": {"per_minute": 1, "min_interval_seconds": 0}}))
    w.add(phase=WarmupPhase.STABLE)
    records = await asyncio.gather(*(w.decide(w.intent(target_value=f"+55119000003{n}")) for n in range(2)))
    assert sorted(r.outcome for r in records) == [DecisionOutcome.APPROVED, DecisionOutcome.QUEUED]


async def test_a_degraded_instance_is_used_at_reduced_caps():
    w = world(phases=phase_policies_with({"STABLE": {"per_minute": 4, "min_interval_seconds": 0}}))
    w.add(phase=WarmupPhase.STABLE, health=HealthStatus.DEGRADED)
    outcomes = [(await w.decide(w.intent(target_value=f"+55119000004{n}"))).outcome for n in range(3)]
    assert outcomes == [DecisionOutcome.APPROVED, DecisionOutcome.APPROVED, DecisionOutcome.QUEUED]


async def test_the_decision_evaluates_a_bounded_shortlist_and_rotates_through_instances():
    w = world(phases=phase_policies_with({"STABLE": {"min_interval_seconds": 0}}), shortlist_size=4)
    states = [w.add(phase=WarmupPhase.STABLE) for _ in range(200)]
    chosen = set()
    for n in range(20):
        record = await w.decide(w.intent(target_value=f"+5511900005{n:02d}"))
        assert len(record.candidates) <= 4
        chosen.add(record.chosen_instance_id)
    assert len(chosen) == 20  # least recently chosen first: load spreads
    assert len(states) == w.projection.pool_size(ORG, Purpose.DISPATCH)


async def test_projection_drops_stale_versions():
    w = world()
    state = w.add(instance(version=3))
    assert not w.projection.upsert_instance(
        instance(instance_id=state.instance_id, version=2, connection=ConnectionState.DISCONNECTED),
        w.clock.now(),
    )
    assert w.projection.instances[state.instance_id].connection_state is ConnectionState.CONNECTED
    w.reputation(state.instance_id, health=HealthStatus.UNHEALTHY)
    assert not w.projection.apply_reputation(
        state.instance_id,
        score=90,
        health=HealthStatus.HEALTHY,
        phase=None,
        cooldown_until=None,
        version=1,
        now=w.clock.now(),
    )
    assert w.projection.instances[state.instance_id].health is HealthStatus.UNHEALTHY


async def test_a_timed_instance_pause_queues_until_it_ends():
    w = world()
    target = w.add(phase=WarmupPhase.STABLE)
    until = w.clock.now() + timedelta(minutes=15)
    w.projection.upsert_control(
        ExecutionControl(
            organization_id=ORG,
            scope=ControlScope.INSTANCE,
            scope_id=target.instance_id,
            paused=True,
            paused_until=until,
            version=1,
            updated_at=w.clock.now(),
        ),
        w.clock.now(),
    )
    record = await w.decide(w.intent())
    assert (record.outcome, record.reason, record.queued_until) == (
        DecisionOutcome.QUEUED,
        DecisionReason.OPS_PAUSED,
        until,
    )
    w.clock.advance(minutes=16)
    assert (await w.decide(w.intent(target_value="+5511900000601"))).outcome is DecisionOutcome.APPROVED


def test_group_targets_are_accepted():
    w = world()
    intent = w.intent(target_kind=TargetKind.GROUP, target_value="120363025246125486@g.us")
    assert intent.target.kind is TargetKind.GROUP


def test_usage_defaults_to_empty():
    assert InstanceUsage().minute == 0


def _control(scope: ControlScope, scope_id: str, *, paused: bool, version: int, w: World) -> ExecutionControl:
    return ExecutionControl(
        organization_id=ORG,
        scope=scope,
        scope_id=scope_id,
        paused=paused,
        paused_until=None,
        version=version,
        updated_at=w.clock.now(),
    )


@pytest.mark.parametrize("scope", [ControlScope.INSTANCE, ControlScope.ORGANIZATION, ControlScope.CAMPAIGN])
async def test_each_paused_scope_blocks_its_new_intents_and_a_resume_lets_the_next_ones_through(scope):
    w = world()
    only = w.add(phase=WarmupPhase.STABLE)
    scope_id = {ControlScope.INSTANCE: only.instance_id, ControlScope.ORGANIZATION: ORG}.get(scope, "camp-1")
    w.projection.upsert_control(_control(scope, scope_id, paused=True, version=1, w=w), w.clock.now())

    blocked = w.intent(campaign_id="camp-1", target_value="+5511900000701")
    record = await w.decide(blocked)
    assert (record.outcome, blocked.status_reason) == (DecisionOutcome.BLOCKED, DecisionReason.OPS_PAUSED)

    w.projection.upsert_control(_control(scope, scope_id, paused=False, version=2, w=w), w.clock.now())
    resumed = w.intent(campaign_id="camp-1", target_value="+5511900000702")
    assert (await w.decide(resumed)).outcome is DecisionOutcome.APPROVED
    assert resumed.decided_by_instance_id == only.instance_id


async def test_a_paused_campaign_or_instance_leaves_the_rest_of_the_organization_sending():
    w = world()
    paused = w.add(phase=WarmupPhase.STABLE)
    other = w.add(instance(), phase=WarmupPhase.STABLE)
    now = w.clock.now()
    w.projection.upsert_control(_control(ControlScope.CAMPAIGN, "camp-1", paused=True, version=1, w=w), now)
    w.projection.upsert_control(
        _control(ControlScope.INSTANCE, paused.instance_id, paused=True, version=1, w=w), now
    )

    elsewhere = w.intent(campaign_id="camp-2", target_value="+5511900000711")
    assert (await w.decide(elsewhere)).outcome is DecisionOutcome.APPROVED
    assert elsewhere.decided_by_instance_id == other.instance_id
    in_campaign = w.intent(campaign_id="camp-1", target_value="+5511900000712")
    await w.decide(in_campaign)
    assert in_campaign.status_reason is DecisionReason.OPS_PAUSED
