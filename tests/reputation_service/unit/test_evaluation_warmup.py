"""Warm-up phases: advancing with age, volume and healthy ratios, one step at a time; regressing one phase
on degradation, at most once a day; back to NEWBORN on a ban."""

from __future__ import annotations

from datetime import timedelta

from reputation_service.domain.evaluation import ReputationState, RestrictionKind, restriction_cooldown
from reputation_service.domain.warmup import PHASES, PhaseChange, WarmupPhase
from tests.reputation_service.unit.test_evaluation import (
    DAY,
    GOOD,
    HOUR,
    NOW,
    good_windows,
    run,
    scaled,
    state,
    windows,
)

RANK = {phase: index for index, phase in enumerate(PHASES)}


def test_a_healthy_number_climbs_one_phase_at_a_time_as_it_ages():
    registered = NOW
    current = ReputationState.initial(now=registered)
    reached: dict[WarmupPhase, timedelta] = {}
    for step in range(4 * 40):  # every 6 hours for 40 days
        age = step * timedelta(hours=6)
        result = run(current, good_windows(), now=registered + age, age=age)
        assert abs(RANK[result.state.phase] - RANK[current.phase]) <= 1
        if result.state.phase is not current.phase:
            reached[result.state.phase] = age
        current = result.state
    assert current.phase is WarmupPhase.STABLE
    assert reached == {
        WarmupPhase.WARMING: 3 * DAY,
        WarmupPhase.INTERACTING: 10 * DAY,
        WarmupPhase.STABLE: 21 * DAY,
    }


def test_an_old_busy_number_still_advances_only_one_phase_per_evaluation():
    newborn = state(WarmupPhase.NEWBORN, since=90 * DAY)
    first = run(newborn, good_windows(), age=365 * DAY)
    assert first.state.phase is WarmupPhase.WARMING
    second = run(first.state, good_windows(), now=NOW + HOUR, age=365 * DAY)
    assert second.state.phase is WarmupPhase.WARMING  # it has to spend its time in WARMING first
    assert "days_in_phase" in second.explanation.phase.reason


def test_a_number_under_an_alert_does_not_advance():
    ws = windows(hour={**GOOD, "disconnects": 3}, day=scaled(GOOD, 5), week=scaled(GOOD, 20))
    result = run(state(WarmupPhase.WARMING, since=30 * DAY), ws)
    assert result.state.phase is WarmupPhase.WARMING
    [clean] = [c for c in result.explanation.phase.criteria if c.name == "clean"]
    assert not clean.met


def test_a_young_number_waits_for_its_age():
    result = run(state(WarmupPhase.NEWBORN, since=2 * DAY), good_windows(), age=2 * DAY)
    assert result.state.phase is WarmupPhase.NEWBORN
    assert result.explanation.phase.reason == "WARMING needs: age_days, days_in_phase"


def test_a_number_regresses_at_most_once_a_day():
    bad = windows(hour={**GOOD, "delivered": 10})
    first = run(state(WarmupPhase.STABLE, since=30 * DAY), bad)
    assert first.state.phase is WarmupPhase.INTERACTING
    # Its 1 h cooldown ends, the next hour is as bad: a longer cooldown, but the phase holds.
    second = run(first.state, bad, now=NOW + 2 * HOUR)
    assert second.cooldown_started is not None
    assert second.state.phase is WarmupPhase.INTERACTING
    assert "already regressed" in second.explanation.phase.reason
    # A day later it may lose another.
    third = run(second.state, bad, now=NOW + 25 * HOUR)
    assert third.cooldown_started is not None
    assert third.state.phase is WarmupPhase.WARMING


def test_a_score_under_the_phases_hold_costs_a_phase_without_any_cooldown():
    # A bad week and nothing since: no alert of the hour or day, but the score is low.
    week = dict(sent=400, delivered=120, read=60, replied=10)
    result = run(state(WarmupPhase.INTERACTING, since=30 * DAY), windows(week=week))
    assert result.cooldown_started is None
    assert result.state.score < 45
    assert result.state.phase is WarmupPhase.WARMING
    assert result.explanation.phase.reason.startswith("score ")


def test_a_newborn_has_no_phase_to_lose():
    result = run(state(WarmupPhase.NEWBORN, since=DAY), windows(hour={**GOOD, "delivered": 10}), age=DAY)
    assert result.cooldown_started is not None
    assert result.state.phase is WarmupPhase.NEWBORN
    assert result.explanation.phase.change is PhaseChange.HELD


def test_a_ban_sends_any_phase_back_to_newborn_at_once():
    for kind in (RestrictionKind.TEMPORARY_BAN, RestrictionKind.PERMANENT_BAN):
        result = restriction_cooldown(state(WarmupPhase.STABLE, score=95), kind, now=NOW)
        assert result.state.phase is WarmupPhase.NEWBORN
        assert result.state.phase_since == NOW
