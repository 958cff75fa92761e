"""An intent pinned to one instance (the warm-up planner's pairing), and the rule every intent obeys: a
number never sends to its own phone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gate_service.domain.decision import DecisionOutcome, DecisionReason, Verdict
from gate_service.domain.intent import IntentStatus
from gate_service.domain.policies import ContactPolicy, GatePolicies, WarmupPhase
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import Purpose
from tests.gate_service.unit.support import PHONE, World, instance

LOOSE_CONTACT = ContactPolicy(min_gap=timedelta(0), per_hour=0)


def world(**policy_overrides: Any) -> World:
    return World(GatePolicies(contact=LOOSE_CONTACT, projection_grace=timedelta(0), **policy_overrides))


async def test_a_pinned_intent_goes_only_through_its_instance_even_when_another_scores_higher():
    w = world()
    pinned = w.add(phase=WarmupPhase.STABLE, score=40)
    w.add(phase=WarmupPhase.STABLE, score=100)
    intent = w.intent(pinned_instance_id=pinned.instance_id)
    record = await w.decide(intent)
    assert record.outcome is DecisionOutcome.APPROVED
    assert intent.decided_by_instance_id == pinned.instance_id
    assert [v.instance_id for v in record.candidates] == [pinned.instance_id]
    assert record.pinned_instance_id == pinned.instance_id and record.excluded == {}


async def test_a_pinned_instance_on_cooldown_queues_the_intent_until_the_cooldown_ends_not_another():
    w = world()
    pinned = w.add(phase=WarmupPhase.STABLE, cooldown=timedelta(minutes=20))
    other = w.add(phase=WarmupPhase.STABLE)
    intent = w.intent(pinned_instance_id=pinned.instance_id)
    record = await w.decide(intent)
    assert (record.outcome, record.reason) == (DecisionOutcome.QUEUED, DecisionReason.COOLDOWN_ACTIVE)
    assert intent.queued_until == pinned.cooldown_until
    assert other.instance_id not in {v.instance_id for v in record.candidates}
    # The scheduler decides it again when the cooldown ends: still the pinned instance, never the other.
    w.clock.advance(minutes=20)
    again = await w.decide(intent)
    assert again.outcome is DecisionOutcome.APPROVED and again.chosen_instance_id == pinned.instance_id
    assert again.pinned_instance_id == pinned.instance_id


async def test_a_pinned_instance_that_cannot_send_blocks_the_intent_rather_than_choosing_another():
    w = world()
    pinned = w.add(phase=WarmupPhase.NEWBORN)  # a NEWBORN number may not DISPATCH
    w.add(phase=WarmupPhase.STABLE)
    intent = w.intent(pinned_instance_id=pinned.instance_id)
    record = await w.decide(intent)
    assert (record.outcome, record.reason) == (DecisionOutcome.BLOCKED, DecisionReason.PURPOSE_NOT_ALLOWED)


async def test_an_instance_of_another_organization_is_refused_as_if_it_did_not_exist():
    w = world()
    w.add(phase=WarmupPhase.STABLE)
    theirs = w.add(instance(organization_id="org-other"), phase=WarmupPhase.STABLE)
    foreign = w.intent(pinned_instance_id=theirs.instance_id)
    unknown = w.intent(pinned_instance_id=new_id())
    answers = [await w.decide(foreign), await w.decide(unknown)]
    for intent, record in zip((foreign, unknown), answers, strict=True):
        assert (record.outcome, record.reason) == (
            DecisionOutcome.BLOCKED,
            DecisionReason.NO_ELIGIBLE_INSTANCE,
        )
        assert intent.status is IntentStatus.BLOCKED
        # Nothing of the other organization's instance shows: no verdict, no count.
        assert record.candidates == () and record.excluded == {}


async def test_an_unknown_pinned_instance_waits_the_projection_grace_like_an_organization_without_any():
    w = World(GatePolicies(contact=LOOSE_CONTACT))
    registered_later = instance(phone="")
    intent = w.intent(pinned_instance_id=registered_later.instance_id)
    first = await w.decide(intent)
    assert (first.outcome, first.reason) == (DecisionOutcome.QUEUED, DecisionReason.NO_ELIGIBLE_INSTANCE)
    w.clock.advance(seconds=0.2)  # the registry's event reaches the projection
    w.add(registered_later, phase=WarmupPhase.STABLE)
    again = await w.decide(intent)
    assert (
        again.outcome is DecisionOutcome.APPROVED and again.chosen_instance_id == registered_later.instance_id
    )


async def test_an_instance_never_sends_to_its_own_phone_another_one_is_chosen():
    w = world()
    own = w.add(instance(phone=PHONE), phase=WarmupPhase.STABLE, score=100)
    other = w.add(instance(phone="5511900000001"), phase=WarmupPhase.STABLE, score=40)
    intent = w.intent(target_value="+" + PHONE)
    record = await w.decide(intent)
    assert record.outcome is DecisionOutcome.APPROVED and record.chosen_instance_id == other.instance_id
    verdicts = {v.instance_id: v for v in record.candidates}
    assert (verdicts[own.instance_id].verdict, verdicts[own.instance_id].reason) == (
        Verdict.FINAL,
        DecisionReason.SELF_TARGET,
    )


async def test_a_warmup_intent_pinned_to_the_targets_own_number_is_blocked_as_self_target():
    w = world()
    own = w.add(instance(phone=PHONE), phase=WarmupPhase.STABLE)
    w.add(instance(phone="5511900000001"), phase=WarmupPhase.STABLE)
    intent = w.intent(purpose=Purpose.WARMUP, pinned_instance_id=own.instance_id)
    record = await w.decide(intent)
    assert (record.outcome, record.reason) == (DecisionOutcome.BLOCKED, DecisionReason.SELF_TARGET)


async def test_the_pin_is_part_of_the_request_an_idempotency_key_stands_for():
    w = world()
    a = w.intent(idempotency_key="k", pinned_instance_id=new_id())
    b = w.intent(idempotency_key="k", pinned_instance_id=new_id())
    unpinned = w.intent(idempotency_key="k")
    assert len({a.request_hash, b.request_hash, unpinned.request_hash}) == 3
