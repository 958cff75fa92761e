"""Rules on their own: the projection grace, and the standing rules the candidate index files instances by."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gate_service.domain.decision import DecisionReason
from gate_service.domain.policies import GatePolicies, HealthStatus, WarmupPhase
from gate_service.domain.rules import ProjectionGrace
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.shared_kernel import ConnectionState, ControlScope, Purpose
from tests.gate_service.unit.support import ORG, World, instance

CREATED = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)
GRACE = ProjectionGrace(timedelta(seconds=2))


def test_the_grace_lets_a_young_intent_that_found_no_instance_at_all_wait_until_it_ends():
    waited = GRACE.wait_until(
        created_at=CREATED, now=CREATED + timedelta(seconds=0.1), candidates=0, excluded=0
    )
    assert waited == CREATED + timedelta(seconds=2)


def test_the_grace_ends_with_the_intents_youth():
    assert (
        GRACE.wait_until(created_at=CREATED, now=CREATED + timedelta(seconds=2), candidates=0, excluded=0)
        is None
    )


def test_no_grace_once_the_gate_knows_an_instance_of_the_organization():
    assert GRACE.wait_until(created_at=CREATED, now=CREATED, candidates=1, excluded=0) is None
    assert GRACE.wait_until(created_at=CREATED, now=CREATED, candidates=0, excluded=3) is None


def test_a_zero_grace_never_waits():
    assert (
        ProjectionGrace(timedelta(0)).wait_until(created_at=CREATED, now=CREATED, candidates=0, excluded=0)
        is None
    )


def test_the_index_files_instances_by_the_standing_rules():
    w = World(GatePolicies())
    now = w.clock.now()
    ready = w.add(phase=WarmupPhase.STABLE)
    cooling = w.add(phase=WarmupPhase.STABLE, cooldown=timedelta(minutes=5))
    gone = w.add(instance(connection=ConnectionState.DISCONNECTED))
    sick_and_paused = w.add(phase=WarmupPhase.STABLE, health=HealthStatus.UNHEALTHY)
    w.projection.upsert_control(
        ExecutionControl(
            organization_id=ORG,
            scope=ControlScope.INSTANCE,
            scope_id=sick_and_paused.instance_id,
            paused=True,
            paused_until=now + timedelta(minutes=1),
            version=1,
            updated_at=now,
        ),
        now,
    )
    placement = {
        state.instance_id: w.projection.classify(state, Purpose.DISPATCH, now)
        for state in (ready, cooling, gone, sick_and_paused)
    }
    assert placement[ready.instance_id].where == "ready"
    cooling_placement = placement[cooling.instance_id]
    assert (cooling_placement.where, cooling_placement.reason) == ("parked", DecisionReason.COOLDOWN_ACTIVE)
    assert cooling_placement.until == now + timedelta(minutes=5)
    assert (placement[gone.instance_id].where, placement[gone.instance_id].reason) == (
        "excluded",
        DecisionReason.INSTANCE_DISCONNECTED,
    )
    # A timed pause would pass; being unhealthy will not: waiting would not help.
    assert (placement[sick_and_paused.instance_id].where, placement[sick_and_paused.instance_id].reason) == (
        "excluded",
        DecisionReason.INSTANCE_UNHEALTHY,
    )
