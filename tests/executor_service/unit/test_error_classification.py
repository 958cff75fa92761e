"""Provider errors -> the executor's classification -> the job's next status, for each class of error the
adapters produce (each adapter's own rules are tested in tests/libs/providers)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from executor_service.domain.job import ExecutionStatus
from executor_service.domain.outcome import ErrorClass, RestrictionKind
from executor_service.domain.retry_policy import RetryPolicy
from executor_service.infrastructure.provider_sender import job_error_from
from libs.providers.base import HttpFailure, classify_http_failure
from libs.providers.evolution import EvolutionProvider
from libs.providers.port import ProviderError, Restriction
from libs.providers.turbozap import TurboZapProvider
from libs.providers.waha import WahaProvider
from libs.providers.wuzapi import WuzapiProvider
from tests.executor_service.unit.builders import LEASE, T0, new_job

POLICY = RetryPolicy(max_attempts=3)


def test_every_provider_error_class_and_restriction_has_a_counterpart():
    for restriction in Restriction:
        error = job_error_from(ProviderError.restricted(restriction, "r"), T0)
        assert error.error_class is ErrorClass.RESTRICTED
        assert error.restriction is RestrictionKind(restriction.value)
    assert job_error_from(ProviderError.transient("t"), T0).error_class is ErrorClass.TRANSIENT
    assert job_error_from(ProviderError.permanent("p"), T0).error_class is ErrorClass.PERMANENT
    assert job_error_from(ProviderError.ambiguous("a"), T0).error_class is ErrorClass.AMBIGUOUS


def test_the_mapping_keeps_code_hint_and_retry_after_but_bounds_them():
    error = job_error_from(ProviderError.transient("http_429" * 20, "slow down " * 50, retry_after=7.0), T0)
    assert error.code.startswith("http_429") and len(error.code) <= 64
    assert len(error.message) <= 200
    assert error.retry_after_seconds == 7.0 and error.occurred_at == T0


def waha_500(text: str) -> HttpFailure:
    return HttpFailure(status=500, body={"exception": {"message": text}}, text=text)


CASES = [
    # (adapter, failure, expected class, expected next status)
    (WahaProvider, waha_500("2 UNKNOWN: server returned error 463"), ErrorClass.RESTRICTED, "FAILED"),
    (WahaProvider, HttpFailure(status=503, text="unavailable"), ErrorClass.TRANSIENT, "RETRY"),
    (
        WahaProvider,
        HttpFailure(status=429, text="", headers={"Retry-After": "3"}),
        ErrorClass.TRANSIENT,
        "RETRY",
    ),
    (WahaProvider, HttpFailure(status=504, text="gateway timeout"), ErrorClass.AMBIGUOUS, "PROCESSING"),
    (WahaProvider, HttpFailure(status=400, text="bad"), ErrorClass.PERMANENT, "FAILED"),
    (
        WahaProvider,
        HttpFailure(status=422, body={"status": "FAILED"}, text='{"status":"FAILED"}'),
        ErrorClass.RESTRICTED,
        "FAILED",
    ),
    (EvolutionProvider, HttpFailure(status=401, text="unauthorized"), ErrorClass.RESTRICTED, "FAILED"),
    (WuzapiProvider, HttpFailure(status=503, text="unavailable"), ErrorClass.TRANSIENT, "RETRY"),
    (TurboZapProvider, HttpFailure(status=404, text="not found"), ErrorClass.PERMANENT, "FAILED"),
]


@pytest.mark.parametrize(("adapter", "failure", "error_class", "status"), CASES)
def test_each_kind_of_provider_failure_leads_to_its_transition(adapter, failure, error_class, status):
    provider_error = classify_http_failure(adapter.name, failure, adapter.specific_rule)
    error = job_error_from(provider_error, T0)
    assert error.error_class is error_class
    job = new_job()
    job.claim(now=T0, lease=LEASE, token="t")
    if error.error_class is ErrorClass.AMBIGUOUS:
        job.record_ambiguous(error, reconcilable=True, settle=LEASE, now=T0)
    else:
        job.record_failure(error, policy=POLICY, now=T0, random=lambda: 0.5)
    assert job.status == ExecutionStatus(status)
    if status == "RETRY" and error.retry_after_seconds:
        assert job.next_attempt_at - T0 >= timedelta(seconds=error.retry_after_seconds)
