"""What `whatlead reputation` prints for an explained evaluation: the state, the terms that moved the score,
the alerts raised against their levels, and the cooldown with its end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from libs.cli.reputation import render
from reputation_service.domain.evaluation import ReputationState, evaluate
from reputation_service.domain.warmup import WarmupPhase
from reputation_service.domain.window_stats import Window, WindowSet, WindowStats
from reputation_service.infrastructure.proto_mapping import explanation_to_proto, state_to_proto
from whatlead.reputation.v1 import reputation_pb2

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_a_delivery_drop_is_printed_with_its_terms_its_alert_and_its_cooldown():
    previous = ReputationState.initial(now=NOW - timedelta(days=20), phase=WarmupPhase.INTERACTING)
    hour = WindowStats(window=Window.HOUR, sent=30, delivered=5, read=2)
    day = WindowStats(window=Window.DAY, sent=30, delivered=5, read=2)
    week = WindowStats(window=Window.WEEK, sent=30, delivered=5, read=2)
    evaluation = evaluate(
        previous, WindowSet(hour=hour, day=day, week=week), now=NOW, instance_age=timedelta(days=20)
    )
    response = reputation_pb2.GetReputationResponse(
        reputation=state_to_proto("i-1", "org", evaluation.state),
        explanation=explanation_to_proto(evaluation.explanation.as_dict()),
    )

    out = render(response, NOW + timedelta(minutes=10))

    assert f"score      {evaluation.state.score}  (was 70)" in out
    assert "health     DEGRADED  (alerts: DELIVERY_DROP" in out
    assert "phase      WARMING  (REGRESSED: DEGRADATION cooldown" in out
    assert (
        "cooldown   until 2026-03-02 11:00:00 UTC (in 50m00s)  DEGRADATION: pause level: DELIVERY_DROP" in out
    )
    assert " -40  delivery  measured 0.167" in out
    assert (
        "DELIVERY_DROP  DELIVERY_RATIO over the hour: 0.167 < review 0.8, pause 0.5 (n=30)  -> PAUSE" in out
    )
    assert "cooldown started: DEGRADATION step 0, until 2026-03-02 11:00:00 UTC" in out
    # The terms printed add up to the score.
    printed = [
        int(line.split()[0])
        for line in out.splitlines()
        if line.startswith("    ") and line.split()[0][1:].isdigit()
    ]
    assert sum(printed) == evaluation.state.score
