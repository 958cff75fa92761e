"""Cooldowns: a 463 cools the number at once and each repeat for longer; the memory forgets; one burst is
one episode; bans; the windows' own cooldowns and how they escalate."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from reputation_service.domain.evaluation import (
    CooldownReason,
    HealthStatus,
    ReputationAlert,
    ReputationState,
    RestrictionKind,
    restriction_cooldown,
)
from reputation_service.domain.warmup import PhaseChange, WarmupPhase
from tests.reputation_service.unit.test_evaluation import DAY, GOOD, HOUR, NOW, run, scaled, state, windows

TIMELOCK = RestrictionKind.REACHOUT_TIMELOCK
MINUTE = timedelta(minutes=1)


def timelock(previous: ReputationState, at=NOW, **kwargs):
    return restriction_cooldown(previous, TIMELOCK, now=at, **kwargs)


def test_a_463_cools_the_number_at_once_and_costs_a_phase():
    result = timelock(state(WarmupPhase.STABLE, score=90))

    decision = result.cooldown_started
    assert decision is not None
    assert (decision.reason, decision.restriction, decision.step) == (
        CooldownReason.REACHOUT_TIMELOCK,
        TIMELOCK,
        0,
    )
    assert result.state.cooldown_until == NOW + 30 * MINUTE
    assert result.state.cooldown_reason is CooldownReason.REACHOUT_TIMELOCK
    assert result.state.alerts == (ReputationAlert.RESTRICTED,)
    assert result.state.phase is WarmupPhase.INTERACTING
    assert result.changed


def test_each_repeat_within_the_memory_cools_for_longer_up_to_a_day():
    previous = state(WarmupPhase.STABLE, score=90)
    at = NOW
    lengths = []
    for _ in range(5):
        result = timelock(previous, at)
        assert result.cooldown_started is not None
        lengths.append(result.state.cooldown_until - at)
        previous = result.state
        at = result.state.cooldown_until + 5 * MINUTE  # the number sent again once it was let out
    assert lengths == [30 * MINUTE, 2 * HOUR, 8 * HOUR, 24 * HOUR, 24 * HOUR]
    assert result.cooldown_started.step == 4


def test_the_memory_forgets_a_463_after_48_hours():
    first = timelock(state(score=90))
    second = timelock(first.state, NOW + 2 * HOUR)
    assert second.state.cooldown_until == NOW + 4 * HOUR  # a repeat: 2 h

    much_later = second.state.cooldown_until + 48 * HOUR + MINUTE
    third = timelock(second.state, much_later)
    assert third.cooldown_started is not None and third.cooldown_started.step == 0
    assert third.state.cooldown_until == much_later + 30 * MINUTE
    assert all(r.started_at > much_later - 48 * HOUR for r in third.state.cooldown_history)


def test_463s_during_their_cooldown_are_one_episode():
    # A burst's asynchronous ERROR acks, or one 463 seen by both the Executor and the webhook.
    first = timelock(state(score=90))
    again = timelock(first.state, NOW + 2 * MINUTE)
    assert again.cooldown_started is None
    assert again.state.cooldown_until == first.state.cooldown_until
    assert again.state.score == first.state.score
    assert again.state.phase is first.state.phase
    assert len(again.state.cooldown_history) == 1
    assert not again.changed


def test_the_providers_own_end_of_a_time_lock_is_never_cut_short():
    end = NOW + 5 * HOUR
    result = timelock(state(), provider_until=end)
    assert result.state.cooldown_until == end

    later_end = NOW + 7 * HOUR
    extended = timelock(result.state, NOW + MINUTE, provider_until=later_end)
    assert extended.cooldown_started is not None and extended.cooldown_started.extended
    assert extended.state.cooldown_until == later_end
    assert extended.cooldown_started.step == 0  # extended, not escalated


def test_a_temporary_ban_cools_for_a_day_and_restarts_the_warm_up():
    result = restriction_cooldown(state(WarmupPhase.STABLE, score=90), RestrictionKind.TEMPORARY_BAN, now=NOW)
    assert result.cooldown_started is not None
    assert result.cooldown_started.reason is CooldownReason.TEMPORARY_BAN
    assert result.state.cooldown_until == NOW + 24 * HOUR
    assert result.state.phase is WarmupPhase.NEWBORN
    assert result.explanation.phase.change is PhaseChange.RESET


def test_a_permanent_ban_ends_any_cooldown_and_starts_none():
    cooling = timelock(state(score=90)).state
    banned = restriction_cooldown(cooling, RestrictionKind.PERMANENT_BAN, now=NOW + MINUTE)
    assert banned.cooldown_started is None
    assert banned.state.cooldown_until is None
    assert banned.state.health is HealthStatus.UNHEALTHY
    assert timelock(banned.state, NOW + 2 * HOUR).cooldown_started is None


@pytest.mark.parametrize(
    "kind", [RestrictionKind.LOGGED_OUT, RestrictionKind.DISCONNECTED, RestrictionKind.UNAUTHORIZED]
)
def test_connection_restrictions_leave_the_reputation_alone(kind):
    previous = state(WarmupPhase.INTERACTING, score=80)
    result = restriction_cooldown(previous, kind, now=NOW)
    assert result.cooldown_started is None and not result.changed
    assert result.state.phase is WarmupPhase.INTERACTING


# ------------------------------------------------------------------------------- cooldowns from windows


def test_a_463_in_the_windows_cools_the_number_when_its_signal_did_not():
    hour = {**GOOD, "timelocks": 1}
    result = run(state(score=90), windows(hour=hour, day={**scaled(GOOD, 5), "timelocks": 1}))
    assert result.cooldown_started is not None
    assert result.cooldown_started.reason is CooldownReason.REACHOUT_TIMELOCK
    assert result.state.cooldown_until == NOW + 30 * MINUTE


def test_a_463_already_answered_by_its_signal_is_not_cooled_twice():
    answered = timelock(state(score=90), NOW - 10 * MINUTE).state
    hour = {**GOOD, "timelocks": 1}
    ws = windows(
        hour=hour, day={**scaled(GOOD, 5), "timelocks": 1}, week={**scaled(GOOD, 20), "timelocks": 1}
    )

    during = run(answered, ws)
    assert during.cooldown_started is None and during.state.cooldown_until == answered.cooldown_until
    after = run(during.state, ws, now=NOW + 25 * MINUTE)  # cooldown over, the 463 still in the hour
    assert after.cooldown_started is None and after.state.cooldown_until is None
    assert ReputationAlert.RESTRICTED in after.state.alerts


def test_a_cooldown_in_force_is_kept_and_an_ended_one_cleared():
    cooling = state(cooldown_until=NOW + HOUR, cooldown_reason=CooldownReason.DEGRADATION)
    kept = run(cooling, windows(hour=GOOD))
    assert (kept.state.cooldown_until, kept.state.cooldown_reason) == (NOW + HOUR, CooldownReason.DEGRADATION)
    assert "in force" in kept.explanation.cooldown_note
    ended = run(kept.state, windows(hour=GOOD), now=NOW + HOUR)
    assert (ended.state.cooldown_until, ended.state.cooldown_reason) == (None, None)
    assert ended.changed


def test_pause_level_evidence_does_not_stretch_a_cooldown_in_force():
    cooling = state(cooldown_until=NOW + HOUR, cooldown_reason=CooldownReason.DEGRADATION)
    result = run(cooling, windows(hour={**GOOD, "delivered": 10}))
    assert result.cooldown_started is None
    assert result.state.cooldown_until == NOW + HOUR


def test_fresh_pause_level_evidence_after_a_cooldown_cools_for_longer():
    bad = windows(hour={**GOOD, "delivered": 10})
    first = run(state(WarmupPhase.STABLE, score=90), bad)
    assert first.cooldown_started is not None and first.state.cooldown_until == NOW + HOUR
    # The cooldown ends; sending resumes and the next hour is as bad.
    second = run(first.state, bad, now=NOW + 2 * HOUR)
    assert second.cooldown_started is not None and second.cooldown_started.step == 1
    assert second.state.cooldown_until == NOW + 2 * HOUR + 4 * HOUR


def test_three_different_alerts_at_review_level_in_the_hour_count_as_the_pause_level():
    hour = {**GOOD, "disconnects": 3, "ack_latency_p50_ms": 30_000, "ack_timeouts": 5}
    result = run(state(), windows(hour=hour, day=scaled(GOOD, 5), week=scaled(GOOD, 20)))
    assert result.cooldown_started is not None
    assert result.cooldown_started.reason is CooldownReason.DEGRADATION
    assert set(result.cooldown_started.alerts) == {
        ReputationAlert.SEND_DELAY_SPIKE,
        ReputationAlert.FREQUENT_DISCONNECTS,
        ReputationAlert.ACK_TIMEOUTS,
    }


def test_connection_instability_cools_the_number_but_keeps_its_phase():
    result = run(state(WarmupPhase.INTERACTING, since=2 * DAY), windows(hour={**GOOD, "disconnects": 6}))
    assert result.cooldown_started is not None
    assert result.cooldown_started.reason is CooldownReason.CONNECTION_INSTABILITY
    assert result.state.phase is WarmupPhase.INTERACTING


def test_disconnects_with_a_delivery_drop_are_degradation_not_just_a_flaky_connection():
    hour = {**GOOD, "disconnects": 6, "delivered": 10}
    result = run(state(WarmupPhase.INTERACTING, since=2 * DAY), windows(hour=hour))
    assert result.cooldown_started is not None
    assert result.cooldown_started.reason is CooldownReason.DEGRADATION
    assert result.state.phase is WarmupPhase.WARMING


def test_a_later_provider_end_never_shortens_a_longer_cooldown_in_force():
    first = timelock(state(score=90), provider_until=NOW + HOUR)
    longer = replace(first.state, cooldown_until=NOW + 12 * HOUR, cooldown_reason=CooldownReason.DEGRADATION)
    again = timelock(longer, NOW + MINUTE, provider_until=NOW + 2 * HOUR)
    assert again.cooldown_started is None
    assert (again.state.cooldown_until, again.state.cooldown_reason) == (
        NOW + 12 * HOUR,
        CooldownReason.DEGRADATION,
    )
