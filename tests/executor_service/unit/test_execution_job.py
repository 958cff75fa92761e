"""MessageExecutionJob: every status transition and invariant, with no I/O."""

from __future__ import annotations

from datetime import timedelta

import pytest

from executor_service.domain.events import (
    MessageDeliveryStatusChanged,
    MessageFailed,
    MessageNeedsReview,
    MessageRetryScheduled,
    MessageSent,
)
from executor_service.domain.job import DeliveryStatus, ExecutionStatus, Reconciliation
from executor_service.domain.message import OutboundMessage
from executor_service.domain.outcome import ErrorClass, JobError, RestrictionKind
from executor_service.domain.retry_policy import RetryPolicy
from libs.seedwork.errors import FailedPrecondition, InvariantViolated
from libs.seedwork.shared_kernel import MessageType, TargetKind
from tests.executor_service.unit.builders import LEASE, T0, error, new_job

POLICY = RetryPolicy(max_attempts=3, base_delay=timedelta(seconds=2), factor=2.0, jitter=0.0)
HALF = lambda: 0.5  # noqa: E731 - a fixed jitter draw


def claimed(**overrides):
    job = new_job(**overrides)
    job.claim(now=T0, lease=LEASE, token="claim-1")
    job.pull_events()
    return job


# --- creation and claiming ---------------------------------------------------------------------------


def test_a_new_job_is_pending_now_with_no_attempts():
    job = new_job()
    assert job.status is ExecutionStatus.PENDING
    assert job.attempts == 0 and job.next_attempt_at == T0
    assert job.executed_at is None and job.lease_until is None
    assert job.pull_events() == []


def test_a_job_with_not_before_waits_for_it():
    job = new_job(not_before=T0 + timedelta(minutes=5))
    assert not job.is_runnable(T0)
    assert job.is_runnable(T0 + timedelta(minutes=5))


def test_an_unsendable_message_fails_at_creation_as_permanent():
    bad = OutboundMessage(target_kind=TargetKind.PHONE, recipient="12", type=MessageType.TEXT, text="")
    job = new_job(message=bad)
    assert job.status is ExecutionStatus.FAILED
    assert job.last_error is not None and job.last_error.error_class is ErrorClass.PERMANENT
    assert job.last_error.code == "invalid_message"
    [failed] = job.pull_events()
    assert isinstance(failed, MessageFailed)


def test_claiming_counts_an_attempt_and_takes_a_lease():
    job = new_job()
    job.claim(now=T0, lease=LEASE, token="t")
    assert job.status is ExecutionStatus.PROCESSING
    assert job.attempts == 1
    assert job.lease_until == T0 + LEASE and job.lease_token == "t"


@pytest.mark.parametrize("status", [s for s in ExecutionStatus if s not in ("PENDING", "RETRY")])
def test_only_pending_or_retry_jobs_can_be_claimed(status):
    job = new_job()
    job.status = status
    with pytest.raises(InvariantViolated):
        job.claim(now=T0, lease=LEASE, token="t")


def test_a_job_not_yet_due_cannot_be_claimed():
    job = new_job(not_before=T0 + timedelta(seconds=1))
    with pytest.raises(InvariantViolated):
        job.claim(now=T0, lease=LEASE, token="t")


def test_the_lease_can_be_extended_only_while_processing():
    job = claimed()
    job.extend_lease(now=T0 + timedelta(seconds=20), lease=LEASE)
    assert job.lease_until == T0 + timedelta(seconds=50)
    job.mark_sent(provider_message_id="p", now=T0)
    with pytest.raises(InvariantViolated):
        job.extend_lease(now=T0, lease=LEASE)


# --- outcomes ----------------------------------------------------------------------------------------


def test_sent_sets_executed_at_and_the_provider_message_id():
    job = claimed()
    job.mark_sent(provider_message_id="true_x_3EB0", now=T0 + timedelta(seconds=1))
    assert job.status is ExecutionStatus.SENT
    assert job.executed_at == T0 + timedelta(seconds=1)
    assert job.provider_message_id == "true_x_3EB0"
    assert job.lease_until is None and job.lease_token is None
    [sent] = job.pull_events()
    assert isinstance(sent, MessageSent)
    assert sent.correlation_id == job.intent_id and sent.aggregate_id == job.id and sent.attempts == 1


def test_each_attempts_outcome_says_when_that_attempt_was_claimed():
    job = claimed()
    job.record_failure(error(ErrorClass.TRANSIENT, "http_503"), policy=POLICY, now=T0, random=HALF)
    [retry] = job.pull_events()
    assert isinstance(retry, MessageRetryScheduled) and retry.attempt_started_at == T0
    second_claim = job.next_attempt_at
    job.claim(now=second_claim, lease=LEASE, token="claim-2")
    job.mark_sent(provider_message_id="true_x_3EB0", now=second_claim + timedelta(seconds=2))
    [sent] = job.pull_events()
    assert isinstance(sent, MessageSent) and sent.attempt_started_at == second_claim


def test_a_failure_before_any_attempt_has_no_attempt_start():
    bad = OutboundMessage(target_kind=TargetKind.PHONE, recipient="12", type=MessageType.TEXT, text="")
    [failed] = new_job(message=bad).pull_events()
    assert isinstance(failed, MessageFailed) and failed.attempt_started_at is None


def test_executed_at_is_only_ever_set_by_sending():
    job = claimed()
    job.record_failure(error(ErrorClass.PERMANENT), policy=POLICY, now=T0)
    assert job.executed_at is None


def test_a_transient_error_schedules_a_retry_with_backoff():
    job = claimed()
    status = job.record_failure(error(ErrorClass.TRANSIENT, "http_503"), policy=POLICY, now=T0, random=HALF)
    assert status is ExecutionStatus.RETRY
    assert job.next_attempt_at == T0 + timedelta(seconds=2)
    assert job.last_error is not None and job.last_error.code == "http_503"
    [scheduled] = job.pull_events()
    assert isinstance(scheduled, MessageRetryScheduled)
    assert scheduled.attempt == 1 and scheduled.next_attempt_at == job.next_attempt_at


def test_backoff_grows_with_each_failed_attempt():
    job = claimed()
    delays = []
    for n in range(2):
        now = job.next_attempt_at if n else T0
        job.record_failure(error(ErrorClass.TRANSIENT), policy=POLICY, now=now, random=HALF)
        delays.append(job.next_attempt_at - now)
        job.claim(now=job.next_attempt_at, lease=LEASE, token=f"t{n}")
    assert delays == [timedelta(seconds=2), timedelta(seconds=4)]


def test_a_transient_error_at_the_maximum_is_final():
    job = claimed()
    for n in range(POLICY.max_attempts - 1):
        job.record_failure(error(ErrorClass.TRANSIENT), policy=POLICY, now=job.next_attempt_at, random=HALF)
        job.claim(now=job.next_attempt_at, lease=LEASE, token=f"t{n}")
    job.pull_events()
    status = job.record_failure(error(ErrorClass.TRANSIENT), policy=POLICY, now=job.next_attempt_at)
    assert status is ExecutionStatus.FAILED and job.attempts == POLICY.max_attempts
    [failed] = job.pull_events()
    assert isinstance(failed, MessageFailed) and failed.attempts == POLICY.max_attempts


def test_a_provider_retry_after_is_honoured():
    job = claimed()
    job.record_failure(
        error(ErrorClass.TRANSIENT, "http_429", retry_after_seconds=60.0), policy=POLICY, now=T0, random=HALF
    )
    assert job.next_attempt_at == T0 + timedelta(seconds=60)


def test_a_permanent_error_fails_at_once():
    job = claimed()
    assert job.record_failure(error(ErrorClass.PERMANENT, "not_on_whatsapp"), policy=POLICY, now=T0) is (
        ExecutionStatus.FAILED
    )
    [failed] = job.pull_events()
    assert failed.error.code == "not_on_whatsapp"


def test_a_restriction_fails_at_once_and_carries_the_restriction():
    job = claimed()
    job.record_failure(
        error(ErrorClass.RESTRICTED, "reachout_timelock", restriction=RestrictionKind.REACHOUT_TIMELOCK),
        policy=POLICY,
        now=T0,
    )
    assert job.status is ExecutionStatus.FAILED and job.attempts == 1
    [failed] = job.pull_events()
    assert failed.error.restriction is RestrictionKind.REACHOUT_TIMELOCK


def test_an_ambiguous_error_is_never_recorded_as_an_ordinary_failure():
    job = claimed()
    with pytest.raises(InvariantViolated):
        job.record_failure(error(ErrorClass.AMBIGUOUS), policy=POLICY, now=T0)


def test_an_ambiguous_outcome_waits_to_settle_when_the_provider_can_be_asked():
    job = claimed()
    job.record_ambiguous(error(ErrorClass.AMBIGUOUS, "read_timeout"), reconcilable=True, settle=LEASE, now=T0)
    assert job.status is ExecutionStatus.PROCESSING
    assert job.lease_until == T0 + LEASE
    assert job.pull_events() == []


def test_an_ambiguous_outcome_needs_review_when_the_provider_cannot_be_asked():
    job = claimed()
    job.record_ambiguous(
        error(ErrorClass.AMBIGUOUS, "read_timeout"), reconcilable=False, settle=LEASE, now=T0
    )
    assert job.status is ExecutionStatus.NEEDS_REVIEW
    [review] = job.pull_events()
    assert isinstance(review, MessageNeedsReview) and review.error.code == "read_timeout"


@pytest.mark.parametrize("action", ["sent", "failure", "hold", "expire", "ambiguous"])
def test_outcomes_need_a_processing_job(action):
    job = new_job()
    with pytest.raises(InvariantViolated):
        match action:
            case "sent":
                job.mark_sent(provider_message_id="p", now=T0)
            case "failure":
                job.record_failure(error(ErrorClass.PERMANENT), policy=POLICY, now=T0)
            case "hold":
                job.hold(until=T0, now=T0)
            case "expire":
                job.expire(now=T0)
            case "ambiguous":
                job.record_ambiguous(error(ErrorClass.AMBIGUOUS), reconcilable=True, settle=LEASE, now=T0)


@pytest.mark.parametrize("terminal", ["SENT", "FAILED", "NEEDS_REVIEW"])
def test_terminal_states_stay(terminal):
    job = claimed()
    match terminal:
        case "SENT":
            job.mark_sent(provider_message_id="p", now=T0)
        case "FAILED":
            job.record_failure(error(ErrorClass.PERMANENT), policy=POLICY, now=T0)
        case "NEEDS_REVIEW":
            job.record_ambiguous(error(ErrorClass.AMBIGUOUS), reconcilable=False, settle=LEASE, now=T0)
    later = T0 + timedelta(hours=1)
    with pytest.raises(InvariantViolated):
        job.claim(now=later, lease=LEASE, token="again")
    with pytest.raises(InvariantViolated):
        job.mark_sent(provider_message_id="q", now=later)
    with pytest.raises(InvariantViolated):
        job.record_failure(error(ErrorClass.TRANSIENT), policy=POLICY, now=later)
    assert job.status == terminal


# --- kill-switch and expiry ----------------------------------------------------------------------------


def test_a_held_job_gives_its_attempt_back_and_waits():
    job = claimed()
    job.hold(until=T0 + timedelta(minutes=1), now=T0)
    assert job.status is ExecutionStatus.PENDING
    assert job.attempts == 0
    assert job.next_attempt_at == T0 + timedelta(minutes=1)
    assert job.held_by_pause and job.lease_until is None
    assert job.pull_events() == []


def test_a_held_retry_stays_a_retry():
    job = claimed()
    job.record_failure(error(ErrorClass.TRANSIENT), policy=POLICY, now=T0, random=HALF)
    job.claim(now=job.next_attempt_at, lease=LEASE, token="t2")
    job.hold(until=job.next_attempt_at + timedelta(minutes=1), now=job.next_attempt_at)
    assert job.status is ExecutionStatus.RETRY and job.attempts == 1


def test_an_expired_intent_fails_without_spending_an_attempt():
    job = claimed(expires_at=T0 + timedelta(seconds=1))
    assert job.is_expired(T0 + timedelta(seconds=1))
    job.expire(now=T0 + timedelta(seconds=1))
    assert job.status is ExecutionStatus.FAILED and job.attempts == 0
    assert job.last_error is not None and job.last_error.error_class is ErrorClass.EXPIRED


# --- reconciliation ----------------------------------------------------------------------------------


def expired_lease_job():
    job = claimed()
    return job, T0 + LEASE + timedelta(seconds=1)


def test_a_live_lease_is_never_rescued():
    job = claimed()
    with pytest.raises(InvariantViolated):
        job.rescue(now=T0 + timedelta(seconds=5), lease=LEASE, token="r", policy=POLICY)


def test_a_rescued_job_found_at_the_provider_is_sent():
    job, later = expired_lease_job()
    assert job.rescue(now=later, lease=LEASE, token="r", policy=POLICY)
    assert job.lease_token == "r" and job.lease_expirations == 1
    job.reconcile(Reconciliation.FOUND, policy=POLICY, now=later, provider_message_id="true_x_3EB0")
    assert job.status is ExecutionStatus.SENT and job.attempts == 1
    assert [type(e) for e in job.pull_events()] == [MessageSent]


def test_a_rescued_job_provably_absent_is_retried_with_backoff():
    job, later = expired_lease_job()
    job.rescue(now=later, lease=LEASE, token="r", policy=POLICY)
    job.reconcile(Reconciliation.ABSENT, policy=POLICY, now=later, random=HALF)
    assert job.status is ExecutionStatus.RETRY
    assert job.last_error is not None and job.last_error.code == "absent_after_lease_expired"


def test_a_rescued_job_that_cannot_be_looked_up_needs_review():
    job, later = expired_lease_job()
    job.rescue(now=later, lease=LEASE, token="r", policy=POLICY)
    job.reconcile(Reconciliation.UNSUPPORTED, policy=POLICY, now=later)
    assert job.status is ExecutionStatus.NEEDS_REVIEW
    [review] = job.pull_events()
    assert review.error.error_class is ErrorClass.AMBIGUOUS and review.error.code == "lease_expired"


def test_an_ambiguous_error_observed_earlier_is_what_the_review_shows():
    job = claimed()
    job.record_ambiguous(error(ErrorClass.AMBIGUOUS, "read_timeout"), reconcilable=True, settle=LEASE, now=T0)
    later = T0 + LEASE + timedelta(seconds=1)
    job.rescue(now=later, lease=LEASE, token="r", policy=POLICY)
    job.reconcile(Reconciliation.UNSUPPORTED, policy=POLICY, now=later)
    [review] = job.pull_events()
    assert review.error.code == "read_timeout"


def test_a_job_rescued_too_often_without_an_answer_needs_review():
    policy = RetryPolicy(max_reconciliations=2)
    job = claimed()
    now = T0
    for _ in range(2):
        now = now + LEASE + timedelta(seconds=1)
        assert job.rescue(now=now, lease=LEASE, token="r", policy=policy)
    now = now + LEASE + timedelta(seconds=1)
    assert not job.rescue(now=now, lease=LEASE, token="r", policy=policy)
    assert job.status is ExecutionStatus.NEEDS_REVIEW
    assert job.last_error is not None and job.last_error.code == "unreconciled"


# --- after sending -------------------------------------------------------------------------------------


def sent_job():
    job = claimed()
    job.mark_sent(provider_message_id="true_x_3EB0", now=T0)
    job.pull_events()
    return job


def test_delivery_progress_is_published_forward_only():
    job = sent_job()
    assert job.record_delivery(DeliveryStatus.DELIVERED, at=T0, now=T0)
    assert job.record_delivery(DeliveryStatus.READ, at=T0, now=T0)
    assert not job.record_delivery(DeliveryStatus.DELIVERED, at=T0, now=T0)  # late, out of order
    assert not job.record_delivery(DeliveryStatus.READ, at=T0, now=T0)  # duplicate
    events = job.pull_events()
    assert [e.status for e in events if isinstance(e, MessageDeliveryStatusChanged)] == ["DELIVERED", "READ"]
    assert all(e.correlation_id == job.intent_id for e in events)


def test_delivery_of_a_job_not_sent_is_ignored():
    job = claimed()
    assert not job.record_delivery(DeliveryStatus.DELIVERED, at=T0, now=T0)


def test_evidence_from_the_provider_settles_a_job_under_review_as_sent():
    job = claimed()
    job.record_ambiguous(error(ErrorClass.AMBIGUOUS), reconcilable=False, settle=LEASE, now=T0)
    job.pull_events()
    assert job.confirm_sent_by_evidence(provider_message_id="3EB0AAAAAAAAAAAAAAAA", now=T0)
    assert job.status is ExecutionStatus.SENT
    assert not job.confirm_sent_by_evidence(provider_message_id="x", now=T0)  # only once


# --- operators -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["FAILED", "NEEDS_REVIEW"])
def test_an_operator_retry_starts_a_new_round(status):
    job = claimed()
    if status == "FAILED":
        job.record_failure(error(ErrorClass.PERMANENT), policy=POLICY, now=T0)
    else:
        job.record_ambiguous(error(ErrorClass.AMBIGUOUS), reconcilable=False, settle=LEASE, now=T0)
    job.pull_events()
    later = T0 + timedelta(minutes=3)
    job.retry_manually(actor="ana@acme", now=later)
    assert job.status is ExecutionStatus.PENDING and job.next_attempt_at == later
    assert job.attempts == 1 and job.attempts_in_round == 0
    [scheduled] = job.pull_events()
    assert isinstance(scheduled, MessageRetryScheduled) and scheduled.actor == "ana@acme"


@pytest.mark.parametrize("status", ["PENDING", "PROCESSING", "SENT", "RETRY"])
def test_an_operator_cannot_retry_other_statuses(status):
    job = new_job()
    job.status = ExecutionStatus(status)
    with pytest.raises(FailedPrecondition):
        job.retry_manually(actor="a", now=T0)


def test_an_operator_cannot_retry_an_expired_intent():
    job = claimed(expires_at=T0 + timedelta(minutes=1))
    job.record_failure(error(ErrorClass.PERMANENT), policy=POLICY, now=T0)
    with pytest.raises(FailedPrecondition):
        job.retry_manually(actor="a", now=T0 + timedelta(minutes=2))


def test_a_restriction_error_requires_its_restriction_kind():
    with pytest.raises(ValueError):
        JobError(error_class=ErrorClass.RESTRICTED, code="x", occurred_at=T0)
    with pytest.raises(ValueError):
        JobError(
            error_class=ErrorClass.PERMANENT, code="x", occurred_at=T0, restriction=RestrictionKind.LOGGED_OUT
        )


# --- lookups that prove nothing, and failures reported after the send ----------------------------------


def test_a_claim_records_when_the_attempt_started():
    job = new_job()
    job.claim(now=T0 + timedelta(seconds=3), lease=LEASE, token="t")
    assert job.claimed_at == T0 + timedelta(seconds=3)


def rescued():
    job = claimed()
    later = T0 + LEASE + timedelta(seconds=1)
    assert job.rescue(now=later, lease=LEASE, token="rescue", policy=POLICY)
    return job, later


def test_an_inconclusive_lookup_needs_review_and_says_why():
    job, later = rescued()
    status = job.reconcile(Reconciliation.INCONCLUSIVE, policy=POLICY, now=later, reason="lid_chat")
    assert status is ExecutionStatus.NEEDS_REVIEW
    assert job.last_error is not None and job.last_error.code == "lookup_inconclusive"
    assert "lid_chat" in job.last_error.message
    [review] = job.pull_events()
    assert isinstance(review, MessageNeedsReview)
    assert not job.is_runnable(later + timedelta(days=1))  # never back to sending by itself


def timelock_after_send(at=T0):
    return JobError(
        error_class=ErrorClass.RESTRICTED,
        code="reachout_timelock",
        restriction=RestrictionKind.REACHOUT_TIMELOCK,
        occurred_at=at,
    )


@pytest.mark.parametrize("status", ["SENT", "PROCESSING", "NEEDS_REVIEW"])
def test_a_send_reported_failed_afterwards_fails_for_good(status):
    job = claimed()
    if status == "SENT":
        job.mark_sent(provider_message_id="pm-1", now=T0)
    elif status == "NEEDS_REVIEW":
        job.record_ambiguous(error(ErrorClass.AMBIGUOUS), reconcilable=False, settle=LEASE, now=T0)
    job.pull_events()
    assert job.fail_after_send(timelock_after_send(), now=T0)
    assert job.status is ExecutionStatus.FAILED and job.lease_until is None
    [failed] = job.pull_events()
    assert isinstance(failed, MessageFailed)
    assert failed.error.restriction is RestrictionKind.REACHOUT_TIMELOCK
    assert not job.is_runnable(T0 + timedelta(days=1))


def test_a_repeated_failure_report_changes_nothing():
    job = sent_job()
    assert job.fail_after_send(timelock_after_send(), now=T0)
    job.pull_events()
    assert not job.fail_after_send(timelock_after_send(), now=T0)
    assert job.pull_events() == []


def test_delivery_reports_after_a_failure_change_nothing():
    job = sent_job()
    job.fail_after_send(timelock_after_send(), now=T0)
    job.pull_events()
    assert not job.record_delivery(DeliveryStatus.DELIVERED, at=T0, now=T0)
    assert not job.confirm_sent_by_evidence(provider_message_id="pm-1", now=T0)
    assert job.status is ExecutionStatus.FAILED and job.pull_events() == []


def test_a_failure_report_about_a_delivered_message_or_an_unsent_job_changes_nothing():
    delivered = sent_job()
    delivered.record_delivery(DeliveryStatus.DELIVERED, at=T0, now=T0)
    assert not delivered.fail_after_send(timelock_after_send(), now=T0)
    waiting = new_job()
    assert not waiting.fail_after_send(timelock_after_send(), now=T0)
    assert waiting.status is ExecutionStatus.PENDING


def test_only_a_restricted_or_permanent_error_fails_a_job_after_its_send():
    with pytest.raises(InvariantViolated):
        sent_job().fail_after_send(error(ErrorClass.TRANSIENT), now=T0)


def test_an_operator_may_retry_a_job_failed_after_its_send():
    job = sent_job()
    job.fail_after_send(timelock_after_send(), now=T0)
    job.retry_manually(actor="ana", now=T0)
    assert job.status is ExecutionStatus.PENDING
