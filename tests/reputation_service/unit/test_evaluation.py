"""The reputation evaluation: the three regression cases that prove the loop closed (none with an explicit
ban), determinism, the explanation, health. Pure domain: no I/O, `now` passed in."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from libs.seedwork.errors import InvalidArgument, InvariantViolated
from reputation_service.domain.evaluation import (
    EVALUATION_VERSION,
    CooldownLadder,
    CooldownReason,
    Evaluation,
    HealthStatus,
    Limit,
    ReputationAlert,
    ReputationState,
    RestrictionKind,
    Thresholds,
    evaluate,
    restriction_cooldown,
)
from reputation_service.domain.warmup import PhaseChange, WarmupPhase
from reputation_service.domain.window_stats import Window, WindowSet, WindowStats

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)

# A number doing well: everything delivered, read often, replied to sometimes, quick acks.
GOOD: Counts = dict(
    sent=100, delivered=98, read=60, replied=20, ack_latency_p50_ms=2_000, ack_latency_p95_ms=20_000
)


# WindowStats fields by name (ints, latencies as float or None); WindowStats itself checks them.
Counts = Mapping[str, Any]


def stats(window: Window, counts: Counts | None = None) -> WindowStats:
    return replace(WindowStats.empty(window), **(counts or {}))


def windows(hour: Counts | None = None, day: Counts | None = None, week: Counts | None = None) -> WindowSet:
    return WindowSet(hour=stats(Window.HOUR, hour), day=stats(Window.DAY, day), week=stats(Window.WEEK, week))


def scaled(counts: Counts, factor: int) -> dict[str, Any]:
    """The same mix of signals, `factor` times as many (latencies stay as they are)."""
    return {
        k: v * factor if v is not None and not k.startswith("ack_latency") else v for k, v in counts.items()
    }


def good_windows() -> WindowSet:
    return windows(hour=GOOD, day=scaled(GOOD, 5), week=scaled(GOOD, 20))


def state(
    phase: WarmupPhase = WarmupPhase.NEWBORN,
    *,
    since: timedelta = 30 * DAY,
    score: int = 70,
    **fields: object,
) -> ReputationState:
    initial = ReputationState.initial(now=NOW - since, phase=phase)
    return replace(initial, score=score, **fields)  # type: ignore[arg-type]


def run(
    previous: ReputationState,
    ws: WindowSet,
    *,
    now: datetime = NOW,
    age: timedelta = 60 * DAY,
    thresholds: Thresholds | None = None,
) -> Evaluation:
    return evaluate(previous, ws, thresholds or Thresholds(), now=now, instance_age=age)


# ------------------------------------------------------------------- the three regression cases (003, step 7)


def test_an_interacting_number_whose_deliveries_collapse_loses_score_and_a_phase():
    settled = run(state(WarmupPhase.INTERACTING, since=3 * DAY), good_windows(), now=NOW - HOUR).state
    assert settled.phase is WarmupPhase.INTERACTING and settled.health is HealthStatus.HEALTHY

    # The last hour: 60 sent, 9 delivered. No ban, no report: only the numbers.
    collapsed = windows(
        hour=dict(sent=60, delivered=9, read=3, replied=1),
        day=dict(sent=300, delivered=230, read=120, replied=40),
        week=dict(sent=1500, delivered=1420, read=800, replied=260),
    )
    result = run(settled, collapsed)

    assert result.state.score < settled.score
    assert result.state.phase is WarmupPhase.WARMING
    assert result.explanation.phase.change is PhaseChange.REGRESSED
    assert ReputationAlert.DELIVERY_DROP in result.state.alerts
    assert result.state.health is HealthStatus.DEGRADED
    assert result.cooldown_started is not None
    assert result.cooldown_started.reason is CooldownReason.DEGRADATION
    delivery = next(t for t in result.explanation.terms if t.name == "delivery")
    assert delivery.contribution < 0


def test_growing_latency_and_disconnects_raise_alerts_then_start_a_cooldown():
    previous = state(WarmupPhase.STABLE, since=20 * DAY)
    base = dict(sent=80, delivered=78, read=40, replied=10)
    steps = [
        dict(ack_latency_p50_ms=4_000, ack_latency_p95_ms=40_000, disconnects=0),
        dict(ack_latency_p50_ms=35_000, ack_latency_p95_ms=360_000, disconnects=2, connection_errors=1),
        dict(ack_latency_p50_ms=150_000, ack_latency_p95_ms=2_100_000, disconnects=5, connection_errors=1),
    ]
    results = []
    for minutes, step in zip((0, 20, 40), steps, strict=True):
        hour = {**base, **step}
        ws = windows(hour=hour, day=scaled(base, 6) | step, week=scaled(base, 30))
        result = run(previous, ws, now=NOW + timedelta(minutes=minutes))
        results.append(result)
        previous = result.state
    calm, warned, paused = results

    assert calm.state.alerts == () and calm.cooldown_started is None
    assert set(warned.state.alerts) == {
        ReputationAlert.SEND_DELAY_SPIKE,
        ReputationAlert.FREQUENT_DISCONNECTS,
    }
    assert warned.state.health is HealthStatus.DEGRADED and warned.cooldown_started is None
    assert paused.cooldown_started is not None
    assert paused.cooldown_started.reason is CooldownReason.CONNECTION_INSTABILITY
    assert ReputationAlert.FREQUENT_DISCONNECTS in paused.cooldown_started.alerts
    assert paused.state.cooldown_until == NOW + timedelta(minutes=40) + HOUR
    assert calm.state.score > warned.state.score > paused.state.score
    # Cooling down is recoverable: the number is not written off.
    assert paused.state.health is HealthStatus.DEGRADED


def test_rising_replies_and_reads_raise_the_score_and_the_phase_advances():
    warming = state(WarmupPhase.WARMING, since=6 * DAY)
    quiet = dict(sent=25, delivered=24, read=5, replied=1)
    before = windows(hour=quiet, day=scaled(quiet, 6), week=scaled(quiet, 30))
    first = run(warming, before, age=14 * DAY)
    assert first.state.phase is WarmupPhase.WARMING
    assert "reply_ratio_week" in first.explanation.phase.reason

    lively = dict(sent=25, delivered=24, read=18, replied=9)
    week = dict(sent=750, delivered=720, read=400, replied=170)
    after = windows(hour=lively, day=scaled(lively, 6), week=week)
    second = run(first.state, after, now=NOW + HOUR, age=14 * DAY)

    assert second.state.score > first.state.score
    assert second.state.phase is WarmupPhase.INTERACTING
    assert second.explanation.phase.change is PhaseChange.ADVANCED
    assert all(c.met for c in second.explanation.phase.criteria)
    assert second.state.phase_since == NOW + HOUR


# ------------------------------------------------------------------------------------------ determinism


def test_the_same_inputs_give_the_same_evaluation():
    previous = state(WarmupPhase.INTERACTING, cooldown_history=())
    ws = windows(hour=dict(sent=40, delivered=15, disconnects=4), day=scaled(GOOD, 5), week=scaled(GOOD, 20))

    first, second = run(previous, ws), run(previous, ws)

    assert first == second
    assert json.dumps(first.explanation.as_dict(), sort_keys=True) == json.dumps(
        second.explanation.as_dict(), sort_keys=True
    )


def test_evaluating_the_same_windows_again_changes_nothing_the_second_time():
    # A re-run after a restart, or a second trigger for the same signals: no second cooldown, no second step.
    ws = windows(hour={**GOOD, "delivered": 10, "timelocks": 1}, day=scaled(GOOD, 5), week=scaled(GOOD, 20))
    first = run(state(WarmupPhase.STABLE, score=90), ws)
    assert first.changed and first.cooldown_started is not None
    second = run(first.state, ws)
    assert not second.changed and second.cooldown_started is None
    assert second.state.cooldown_history == first.state.cooldown_history
    assert second.state.phase is first.state.phase


def test_every_result_names_its_rules_and_grows_the_version():
    previous = state(version=41)
    result = run(previous, good_windows())
    assert result.state.evaluation_version == EVALUATION_VERSION == result.explanation.evaluation_version
    assert result.state.version == 42
    assert result.state.evaluated_at == NOW


def test_evaluation_refuses_a_naive_now_and_a_negative_age():
    with pytest.raises(InvariantViolated):
        evaluate(state(), good_windows(), now=NOW.replace(tzinfo=None), instance_age=DAY)
    with pytest.raises(InvariantViolated):
        evaluate(state(), good_windows(), now=NOW, instance_age=-DAY)


# ------------------------------------------------------------------------------------------ explanation


DISASTER: Counts = dict(
    sent=100,
    delivered=10,
    read=0,
    replied=0,
    failed=40,
    ack_timeouts=60,
    disconnects=9,
    timelocks=3,
    bans=1,
    ack_latency_p50_ms=600_000,
    ack_latency_p95_ms=3_600_000,
)


@pytest.mark.parametrize(
    "ws",
    [
        pytest.param(WindowSet.empty(), id="no evidence"),
        pytest.param(good_windows(), id="clipped at 100"),
        pytest.param(windows(hour=DISASTER, day=DISASTER, week=DISASTER), id="clipped at 0"),
        pytest.param(
            windows(hour=dict(sent=30, delivered=20), day=dict(sent=200, delivered=150)), id="partial"
        ),
    ],
)
def test_the_explanation_adds_up_to_the_score(ws):
    result = run(state(), ws)
    explanation = result.explanation
    assert sum(term.contribution for term in explanation.terms) == explanation.score == result.state.score
    assert 0 <= result.state.score <= 100


def test_a_restriction_explains_its_score_too():
    result = restriction_cooldown(state(score=80), RestrictionKind.REACHOUT_TIMELOCK, now=NOW)
    assert sum(term.contribution for term in result.explanation.terms) == result.state.score < 80


def test_the_explanation_shows_each_alert_measured_against_its_levels():
    ws = windows(
        hour=dict(sent=50, delivered=35, read=20, replied=5), day=scaled(GOOD, 5), week=scaled(GOOD, 20)
    )
    result = run(state(), ws)

    [hourly] = [
        c
        for c in result.explanation.alert_checks
        if c.alert is ReputationAlert.DELIVERY_DROP and c.window is Window.HOUR
    ]
    assert hourly.measured == pytest.approx(0.70)
    assert (hourly.review, hourly.pause, hourly.volume, hourly.min_volume) == (0.80, 0.50, 50, 20)
    assert hourly.level.value == "REVIEW"
    stored = result.explanation.as_dict()
    json.dumps(stored)  # storable as it is
    assert stored["windows"]["hour"]["sent"] == 50  # type: ignore[index]
    assert stored["thresholds"]["delivery_drop"]["review"] == 0.80  # type: ignore[index]


# ---------------------------------------------------------------------------------------------- health


def test_a_number_without_evidence_is_healthy_at_the_baseline():
    result = run(state(), WindowSet.empty())
    assert (result.state.score, result.state.health, result.state.alerts) == (70, HealthStatus.HEALTHY, ())


def test_any_alert_makes_a_number_degraded():
    ws = windows(hour={**GOOD, "disconnects": 3}, day=scaled(GOOD, 5), week=scaled(GOOD, 20))
    result = run(state(), ws)
    assert result.state.alerts == (ReputationAlert.FREQUENT_DISCONNECTS,)
    assert result.state.health is HealthStatus.DEGRADED


@pytest.mark.parametrize(
    ("degraded_below", "unhealthy_below", "health"),
    [
        (70, 0, HealthStatus.HEALTHY),  # the baseline 70 is not under 70
        (71, 0, HealthStatus.DEGRADED),
        (80, 70, HealthStatus.DEGRADED),
        (80, 71, HealthStatus.UNHEALTHY),
    ],
)
def test_the_score_maps_to_a_health_by_the_organizations_cut_offs(degraded_below, unhealthy_below, health):
    thresholds = Thresholds(degraded_below=degraded_below, unhealthy_below=unhealthy_below)
    assert run(state(), WindowSet.empty(), thresholds=thresholds).state.health is health


def test_a_cooldown_alone_never_writes_a_number_off():
    result = restriction_cooldown(state(score=90), RestrictionKind.REACHOUT_TIMELOCK, now=NOW)
    assert result.state.cooling_down(NOW)
    assert result.state.health is HealthStatus.DEGRADED  # the Gate waits it out; UNHEALTHY would be final


def test_a_permanent_ban_is_unhealthy_for_good():
    banned = restriction_cooldown(state(WarmupPhase.STABLE, score=90), RestrictionKind.PERMANENT_BAN, now=NOW)
    assert (banned.state.health, banned.state.score, banned.state.phase) == (
        HealthStatus.UNHEALTHY,
        0,
        WarmupPhase.NEWBORN,
    )
    later = run(banned.state, good_windows(), now=NOW + 30 * DAY)
    assert (later.state.health, later.state.score, later.cooldown_started) == (
        HealthStatus.UNHEALTHY,
        0,
        None,
    )
    assert sum(t.contribution for t in later.explanation.terms) == 0


# ------------------------------------------------------------------------------------------ thresholds


def test_thresholds_refuse_a_pause_level_milder_than_its_review_level():
    with pytest.raises(InvalidArgument) as raised:
        Thresholds(
            delivery_drop=Limit(
                alert=ReputationAlert.DELIVERY_DROP,
                metric=Thresholds().delivery_drop.metric,
                review=0.5,
                pause=0.8,
                min_volume=20,
            )
        )
    assert [v.field for v in raised.value.violations] == ["delivery_drop.pause"]


def test_thresholds_refuse_a_limit_filed_under_another_alert_and_one_that_fires_on_nothing():
    disconnects = Thresholds().frequent_disconnects
    with pytest.raises(InvalidArgument) as raised:
        Thresholds(
            delivery_drop=replace(disconnects, review=1),
            frequent_disconnects=replace(disconnects, review=0),
        )
    assert [v.field for v in raised.value.violations] == [
        "delivery_drop.alert",
        "frequent_disconnects.review",
    ]


def test_thresholds_refuse_an_inferred_cooldown_shorter_than_the_hour_it_is_judged_on():
    with pytest.raises(InvalidArgument) as raised:
        Thresholds(degradation_cooldowns=CooldownLadder(steps=(timedelta(minutes=10),)))
    assert [v.field for v in raised.value.violations] == ["degradation_cooldowns"]
