"""Every alert at its review and pause levels (just short of and at each), and the minimum volume guard.

A ratio where lower is worse (delivery, engagement) fires strictly under its level; everything else fires at
or over it. Review level: the alert is active and the number DEGRADED. Pause level: a cooldown starts."""

from __future__ import annotations

import pytest

from reputation_service.domain.evaluation import (
    AlertLevel,
    CooldownReason,
    Evaluation,
    HealthStatus,
    Limit,
    Metric,
    ReputationAlert,
    Thresholds,
)
from reputation_service.domain.window_stats import Window
from tests.reputation_service.unit.test_evaluation import GOOD, run, scaled, state, windows

A = ReputationAlert
CLEAR, REVIEW, PAUSE = AlertLevel.CLEAR, AlertLevel.REVIEW, AlertLevel.PAUSE


def level_of(result: Evaluation, alert: ReputationAlert) -> AlertLevel:
    levels = {c.level for c in result.explanation.alert_checks if c.alert is alert}
    for level in (PAUSE, REVIEW, CLEAR):
        if level in levels:
            return level
    return AlertLevel.INSUFFICIENT_DATA


def assert_level(result: Evaluation, alert: ReputationAlert, level: AlertLevel) -> None:
    assert level_of(result, alert) is level
    started = result.cooldown_started
    if level is CLEAR:
        assert alert not in result.state.alerts
        assert started is None
    elif level is REVIEW:
        assert alert in result.state.alerts
        assert result.state.health is HealthStatus.DEGRADED
        assert started is None
    else:
        assert alert in result.state.alerts
        assert started is not None and alert in started.alerts


HOURLY = [
    # delivered / sent: review under 0.80, pause under 0.50
    ("delivery at review", dict(sent=100, delivered=80), A.DELIVERY_DROP, CLEAR),
    ("delivery just under review", dict(sent=100, delivered=79), A.DELIVERY_DROP, REVIEW),
    ("delivery at pause", dict(sent=100, delivered=50), A.DELIVERY_DROP, REVIEW),
    ("delivery just under pause", dict(sent=100, delivered=49), A.DELIVERY_DROP, PAUSE),
    # failed / (sent + failed): review at 5 %, pause at 10 % (SES's bounce levels)
    ("failures just under review", dict(sent=96, failed=4), A.HIGH_FAILURE_RATE, CLEAR),
    ("failures at review", dict(sent=95, failed=5), A.HIGH_FAILURE_RATE, REVIEW),
    ("failures just under pause", dict(sent=91, failed=9), A.HIGH_FAILURE_RATE, REVIEW),
    ("failures at pause", dict(sent=90, failed=10), A.HIGH_FAILURE_RATE, PAUSE),
    # ack timeouts / sent: review at 5 %, pause at 15 %
    ("timeouts just under review", dict(ack_timeouts=4), A.ACK_TIMEOUTS, CLEAR),
    ("timeouts at review", dict(ack_timeouts=5), A.ACK_TIMEOUTS, REVIEW),
    ("timeouts just under pause", dict(ack_timeouts=14), A.ACK_TIMEOUTS, REVIEW),
    ("timeouts at pause", dict(ack_timeouts=15), A.ACK_TIMEOUTS, PAUSE),
    # median sent -> delivered: review at 30 s, pause at 2 min
    ("p50 just under review", dict(ack_latency_p50_ms=29_999), A.SEND_DELAY_SPIKE, CLEAR),
    ("p50 at review", dict(ack_latency_p50_ms=30_000), A.SEND_DELAY_SPIKE, REVIEW),
    ("p50 just under pause", dict(ack_latency_p50_ms=119_999), A.SEND_DELAY_SPIKE, REVIEW),
    ("p50 at pause", dict(ack_latency_p50_ms=120_000), A.SEND_DELAY_SPIKE, PAUSE),
    # p95 sent -> delivered: review at 5 min, pause at 30 min
    ("p95 just under review", dict(ack_latency_p95_ms=299_999), A.SEND_DELAY_SPIKE, CLEAR),
    ("p95 at review", dict(ack_latency_p95_ms=300_000), A.SEND_DELAY_SPIKE, REVIEW),
    ("p95 just under pause", dict(ack_latency_p95_ms=1_799_999), A.SEND_DELAY_SPIKE, REVIEW),
    ("p95 at pause", dict(ack_latency_p95_ms=1_800_000), A.SEND_DELAY_SPIKE, PAUSE),
    # disconnects + connection errors in the hour: review at 3, pause at 6
    ("disconnects just under review", dict(disconnects=2), A.FREQUENT_DISCONNECTS, CLEAR),
    ("disconnects at review", dict(disconnects=2, connection_errors=1), A.FREQUENT_DISCONNECTS, REVIEW),
    ("disconnects just under pause", dict(disconnects=5), A.FREQUENT_DISCONNECTS, REVIEW),
    ("disconnects at pause", dict(disconnects=6), A.FREQUENT_DISCONNECTS, PAUSE),
]


@pytest.mark.parametrize(("hour", "alert", "level"), [c[1:] for c in HOURLY], ids=[c[0] for c in HOURLY])
def test_each_alert_fires_at_its_review_and_pause_levels(hour, alert, level):
    ws = windows(hour={**GOOD, **hour}, day=scaled(GOOD, 5), week=scaled(GOOD, 20))
    assert_level(run(state(), ws), alert, level)


@pytest.mark.parametrize(
    ("read", "level"), [(392, CLEAR), (391, REVIEW)], ids=["engagement at review", "engagement just under"]
)
def test_low_engagement_is_judged_on_the_week_and_only_reviews_by_default(read, level):
    # 1960 delivered in the week: reads 392 = 20 %, the review level; no replies.
    week = {**scaled(GOOD, 20), "read": read, "replied": 0}
    result = run(state(), windows(hour=GOOD, day=scaled(GOOD, 5), week=week))
    assert_level(result, A.LOW_ENGAGEMENT, level)


def test_an_organization_may_give_low_engagement_a_pause_level():
    thresholds = Thresholds(
        low_engagement=Limit(
            alert=A.LOW_ENGAGEMENT,
            metric=Metric.ENGAGEMENT_RATIO,
            review=0.20,
            pause=0.05,
            min_volume=50,
            windows=(Window.WEEK,),
            pause_window=Window.WEEK,
        )
    )
    for read, level in ((98, REVIEW), (97, PAUSE)):  # 5 % of 1960 delivered is 98
        week = {**scaled(GOOD, 20), "read": read, "replied": 0}
        result = run(state(), windows(hour=GOOD, day=scaled(GOOD, 5), week=week), thresholds=thresholds)
        assert_level(result, A.LOW_ENGAGEMENT, level)
    assert result.cooldown_started is not None
    assert result.cooldown_started.reason is CooldownReason.DEGRADATION


@pytest.mark.parametrize(("timelocks", "level"), [(0, CLEAR), (1, REVIEW)])
def test_a_restriction_in_the_day_keeps_the_number_under_review(timelocks, level):
    # Earlier than the last hour, so no cooldown is due from the windows (the signal path started one).
    day = {**scaled(GOOD, 5), "timelocks": timelocks}
    week = {**scaled(GOOD, 20), "timelocks": timelocks}
    result = run(state(), windows(hour=GOOD, day=day, week=week))
    assert_level(result, A.RESTRICTED, level)


def test_the_pause_level_is_judged_on_the_last_hour_only():
    # A day far under the pause level, but a clean last hour: review, and no cooldown.
    day = {**scaled(GOOD, 5), "delivered": 100}
    result = run(state(), windows(hour=GOOD, day=day, week=scaled(GOOD, 20)))
    assert_level(result, A.DELIVERY_DROP, REVIEW)
    [daily] = [
        c for c in result.explanation.alert_checks if c.alert is A.DELIVERY_DROP and c.window is Window.DAY
    ]
    assert daily.measured == pytest.approx(0.2) and daily.pause is None


MIN_VOLUME = [
    ("19 sent, none delivered", dict(sent=19, delivered=0, read=0, replied=0), A.DELIVERY_DROP, False),
    ("20 sent, none delivered", dict(sent=20, delivered=0, read=0, replied=0), A.DELIVERY_DROP, True),
    (
        "19 attempts, all failed",
        dict(sent=0, delivered=0, read=0, replied=0, failed=19),
        A.HIGH_FAILURE_RATE,
        False,
    ),
    (
        "20 attempts, all failed",
        dict(sent=0, delivered=0, read=0, replied=0, failed=20),
        A.HIGH_FAILURE_RATE,
        True,
    ),
    ("19 sent, all timed out", dict(sent=19, delivered=19, ack_timeouts=19), A.ACK_TIMEOUTS, False),
    ("20 sent, all timed out", dict(sent=20, delivered=20, ack_timeouts=20), A.ACK_TIMEOUTS, True),
    ("9 delivered, slow", dict(sent=9, delivered=9, ack_latency_p50_ms=600_000), A.SEND_DELAY_SPIKE, False),
    ("10 delivered, slow", dict(sent=10, delivered=10, ack_latency_p50_ms=600_000), A.SEND_DELAY_SPIKE, True),
]


@pytest.mark.parametrize(
    ("hour", "alert", "fires"), [c[1:] for c in MIN_VOLUME], ids=[c[0] for c in MIN_VOLUME]
)
def test_a_ratio_alert_waits_for_its_minimum_volume(hour, alert, fires):
    base = dict(read=0, replied=0, ack_latency_p50_ms=None, ack_latency_p95_ms=None)
    result = run(state(), windows(hour={**base, **hour}))
    assert (alert in result.state.alerts) is fires
    if not fires:
        assert level_of(result, alert) is AlertLevel.INSUFFICIENT_DATA


def test_latency_unknown_is_no_evidence_either_way():
    result = run(state(), windows(hour={**GOOD, "ack_latency_p50_ms": None, "ack_latency_p95_ms": None}))
    assert A.SEND_DELAY_SPIKE not in result.state.alerts
    assert next(t for t in result.explanation.terms if t.name == "ack_latency_p50").measured is None
