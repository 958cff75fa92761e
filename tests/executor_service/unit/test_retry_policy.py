"""Backoff and pause timing: exponential, capped, jittered both ways, Retry-After as a floor."""

from __future__ import annotations

from datetime import timedelta

import pytest

from executor_service.domain.retry_policy import RetryPolicy
from tests.executor_service.unit.builders import T0

POLICY = RetryPolicy(
    max_attempts=5, base_delay=timedelta(seconds=2), factor=4.0, max_delay=timedelta(minutes=5), jitter=0.2
)


@pytest.mark.parametrize(("attempt", "seconds"), [(1, 2), (2, 8), (3, 32), (4, 128), (5, 300), (9, 300)])
def test_nominal_delay_grows_exponentially_up_to_the_cap(attempt, seconds):
    assert POLICY.nominal_delay(attempt) == timedelta(seconds=seconds)


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.8), (0.5, 1.0), (0.999999, 1.2)])
def test_jitter_spreads_the_delay_both_ways_by_the_configured_fraction(draw, factor):
    delay = POLICY.delay(3, random=lambda: draw)
    assert delay.total_seconds() == pytest.approx(32 * factor, rel=1e-4)


def test_a_retry_after_from_the_provider_is_a_floor():
    assert POLICY.delay(1, random=lambda: 0.5, retry_after_seconds=30) == timedelta(seconds=30)
    assert POLICY.delay(3, random=lambda: 0.5, retry_after_seconds=1) == timedelta(seconds=32)


def test_attempts_are_exhausted_at_the_maximum():
    assert not POLICY.exhausted(4)
    assert POLICY.exhausted(5)


def test_a_paused_job_waits_for_the_pause_end_but_at_most_the_recheck():
    policy = RetryPolicy(pause_recheck=timedelta(minutes=1))
    assert policy.paused_until(T0, None) == T0 + timedelta(minutes=1)
    assert policy.paused_until(T0, T0 + timedelta(seconds=10)) == T0 + timedelta(seconds=10)
    assert policy.paused_until(T0, T0 + timedelta(hours=2)) == T0 + timedelta(minutes=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay": timedelta(0)},
        {"max_delay": timedelta(seconds=1)},
        {"factor": 0.5},
        {"jitter": 1.0},
        {"pause_recheck": timedelta(0)},
    ],
)
def test_incoherent_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
