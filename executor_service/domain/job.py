"""MessageExecutionJob: one approved intent on its way to a provider, sent at most once.

Statuses and what moves a job between them:

    PENDING --claim--> PROCESSING --sent--> SENT (terminal, unless the provider reports the send failed)
    RETRY   --claim--> PROCESSING --transient, attempts left--> RETRY
                                  --transient at max / permanent / restricted / expired--> FAILED
                                  --ambiguous, provider cannot be asked--> NEEDS_REVIEW
                                  --held by the kill-switch or a restricted instance--> back to
                                    PENDING/RETRY, attempt not spent
    PROCESSING with an expired lease --rescue, reconcile--> SENT (found) | RETRY (provably absent)
                                                             | NEEDS_REVIEW (cannot be asked, or the
                                                               lookup proves nothing)
    FAILED / NEEDS_REVIEW --operator's retry--> PENDING (a new round of attempts)
    NEEDS_REVIEW --provider reports the message (delivery webhook)--> SENT
    SENT / PROCESSING / NEEDS_REVIEW --provider reports the send failed (ERROR ack)--> FAILED
"""

from __future__ import annotations

import random as _random_module
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypedDict

from executor_service.domain.events import (
    MessageDeliveryStatusChanged,
    MessageFailed,
    MessageNeedsReview,
    MessageRetryScheduled,
    MessageSent,
)
from executor_service.domain.message import OutboundMessage
from executor_service.domain.outcome import ErrorClass, JobError
from executor_service.domain.retry_policy import RetryPolicy
from libs.seedwork.aggregate import AggregateRoot
from libs.seedwork.errors import FailedPrecondition, InvariantViolated, Reason
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import Provider

Random = Callable[[], float]
_random: Random = _random_module.random


class _JobEventFields(TypedDict):
    """What every event of a job carries (see events.JobEvent)."""

    event_id: str
    organization_id: str
    aggregate_id: str
    occurred_at: datetime
    correlation_id: str
    job_id: str
    intent_id: str
    instance_id: str
    provider: Provider


class ExecutionStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"  # claimed by a worker, under lease
    SENT = "SENT"
    RETRY = "RETRY"  # waiting for next_attempt_at
    FAILED = "FAILED"
    NEEDS_REVIEW = "NEEDS_REVIEW"  # outcome unknown and not reconcilable: never re-sent by itself


RUNNABLE = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RETRY})
# Terminal for workers; FAILED and NEEDS_REVIEW leave only by an operator's retry (or, for NEEDS_REVIEW,
# by the provider's own evidence that the message went out).
TERMINAL = frozenset({ExecutionStatus.SENT, ExecutionStatus.FAILED, ExecutionStatus.NEEDS_REVIEW})


class DeliveryStatus(StrEnum):
    NONE = "NONE"
    DELIVERED = "DELIVERED"
    READ = "READ"


# Where a send may have left: what a later ERROR ack about it can fail.
_FAILS_AFTER_SEND = frozenset(
    {ExecutionStatus.SENT, ExecutionStatus.PROCESSING, ExecutionStatus.NEEDS_REVIEW}
)

_DELIVERY_RANK = {DeliveryStatus.NONE: 0, DeliveryStatus.DELIVERED: 1, DeliveryStatus.READ: 2}


class Reconciliation(StrEnum):
    """What a worker learnt about a job whose outcome was unknown."""

    FOUND = "FOUND"  # the provider has the message: it was sent
    ABSENT = "ABSENT"  # the provider proves it never got it: safe to send again
    INCONCLUSIVE = "INCONCLUSIVE"  # asked, but the answer proves nothing (a miss is no proof there)
    UNSUPPORTED = "UNSUPPORTED"  # the provider cannot be asked


@dataclass(kw_only=True, eq=False)
class MessageExecutionJob(AggregateRoot):
    id: str
    intent_id: str
    organization_id: str
    instance_id: str
    provider: Provider
    provider_instance_ref: str
    campaign_id: str
    message: OutboundMessage
    status: ExecutionStatus
    attempts: int  # provider attempts ever made (grows by one per claim that reaches the provider)
    attempts_base: int  # attempts before the current round (an operator's retry starts a new round)
    last_error: JobError | None
    next_attempt_at: datetime
    lease_until: datetime | None
    lease_token: str | None  # which claim holds the lease: a stale worker cannot write over a new one
    client_message_id: str | None  # the id we choose, for providers that accept it (reconciliation)
    provider_message_id: str | None
    delivery_status: DeliveryStatus
    held_by_pause: bool  # waiting for a kill-switch to lift: woken at once on resume
    lease_expirations: int  # how often a worker died (or hung) holding this job
    claimed_at: datetime | None  # when the latest attempt was claimed: a lookup searches from there
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    executed_at: datetime | None
    version: int = 1  # optimistic concurrency, maintained by the repository

    # --- creation ------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        intent_id: str,
        organization_id: str,
        instance_id: str,
        provider: Provider,
        provider_instance_ref: str,
        campaign_id: str,
        message: OutboundMessage,
        client_message_id: str | None,
        not_before: datetime | None,
        expires_at: datetime | None,
        now: datetime,
    ) -> MessageExecutionJob:
        """A PENDING job for an approved intent. A message that could never be sent fails at once
        (PERMANENT), so the Gate still hears about it."""
        job = cls(
            id=new_id(),
            intent_id=intent_id,
            organization_id=organization_id,
            instance_id=instance_id,
            provider=provider,
            provider_instance_ref=provider_instance_ref,
            campaign_id=campaign_id,
            message=message,
            status=ExecutionStatus.PENDING,
            attempts=0,
            attempts_base=0,
            last_error=None,
            next_attempt_at=max(not_before, now) if not_before else now,
            lease_until=None,
            lease_token=None,
            client_message_id=client_message_id,
            provider_message_id=None,
            delivery_status=DeliveryStatus.NONE,
            held_by_pause=False,
            lease_expirations=0,
            claimed_at=None,
            expires_at=expires_at,
            created_at=now,
            updated_at=now,
            executed_at=None,
        )
        problems = message.problems()
        if problems:
            job._fail(
                JobError(
                    error_class=ErrorClass.PERMANENT,
                    code="invalid_message",
                    message="; ".join(f"{name} {why}" for name, why in problems),
                    occurred_at=now,
                ),
                now,
            )
        return job

    # --- claiming ------------------------------------------------------------------------------------

    def is_runnable(self, now: datetime) -> bool:
        return self.status in RUNNABLE and self.next_attempt_at <= now

    def claim(self, *, now: datetime, lease: timedelta, token: str) -> None:
        """A worker takes the job: PROCESSING under a lease, committed before any provider call.
        The attempt is counted here, so a crash during the call still counts it."""
        if not self.is_runnable(now):
            raise InvariantViolated(f"job {self.id} is {self.status} and not due; it cannot be claimed")
        self.status = ExecutionStatus.PROCESSING
        self.attempts += 1
        self.lease_until = now + lease
        self.lease_token = token
        self.held_by_pause = False
        self.claimed_at = now
        self.updated_at = now

    def extend_lease(self, *, now: datetime, lease: timedelta) -> None:
        self._require(ExecutionStatus.PROCESSING, "extend the lease of")
        self.lease_until = now + lease
        self.updated_at = now

    def lease_expired(self, now: datetime) -> bool:
        return (
            self.status is ExecutionStatus.PROCESSING
            and self.lease_until is not None
            and self.lease_until <= now
        )

    def is_expired(self, now: datetime) -> bool:
        """The intent's validity ended: it must not be sent any more."""
        return self.expires_at is not None and now >= self.expires_at

    @property
    def attempts_in_round(self) -> int:
        return self.attempts - self.attempts_base

    # --- outcomes of an attempt ----------------------------------------------------------------------

    def hold(self, *, until: datetime, now: datetime) -> None:
        """The kill-switch (or a restriction of the instance) holds the job: no provider call was made, so
        the claim's attempt is given back and the job waits, runnable again at `until` (or at once when the
        pause or the restriction lifts)."""
        self._require(ExecutionStatus.PROCESSING, "hold")
        self.attempts -= 1
        self.status = ExecutionStatus.RETRY if self.last_error is not None else ExecutionStatus.PENDING
        self.next_attempt_at = until
        self.held_by_pause = True
        self._release(now)

    def mark_sent(self, *, provider_message_id: str, now: datetime) -> None:
        self._require(ExecutionStatus.PROCESSING, "mark as sent")
        self._sent(provider_message_id, now)

    def expire(self, *, now: datetime) -> None:
        """Claimed after the intent's validity: fail without calling the provider (attempt given back)."""
        self._require(ExecutionStatus.PROCESSING, "expire")
        self.attempts -= 1
        self._fail(
            JobError(
                error_class=ErrorClass.EXPIRED,
                code="intent_expired",
                message="the intent expired before it could be sent",
                occurred_at=now,
            ),
            now,
        )

    def record_failure(
        self, error: JobError, *, policy: RetryPolicy, now: datetime, random: Random = _random
    ) -> ExecutionStatus:
        """Apply a classified failure of this attempt; returns the new status.

        TRANSIENT: RETRY after a jittered backoff, or FAILED once the round's attempts are spent.
        PERMANENT, RESTRICTED, EXPIRED: FAILED (a restriction is never retried on this instance).
        AMBIGUOUS: use `record_ambiguous` instead; the caller must first try to reconcile.
        """
        self._require(ExecutionStatus.PROCESSING, "record a failure of")
        match error.error_class:
            case ErrorClass.TRANSIENT:
                if policy.exhausted(self.attempts_in_round):
                    self._fail(error, now)
                else:
                    self._schedule_retry(error, policy, now, random)
            case ErrorClass.PERMANENT | ErrorClass.RESTRICTED | ErrorClass.EXPIRED:
                self._fail(error, now)
            case ErrorClass.AMBIGUOUS:
                raise InvariantViolated("an ambiguous outcome must be reconciled, not recorded as a failure")
        return self.status

    def record_ambiguous(
        self, error: JobError, *, reconcilable: bool, settle: timedelta, now: datetime
    ) -> ExecutionStatus:
        """The request may have left. When the provider can be asked, keep the job PROCESSING until
        `settle` has passed (so the provider finishes what it got), then it is reconciled like a job whose
        worker died; otherwise nobody can ever tell: NEEDS_REVIEW now. Never re-sent blindly."""
        self._require(ExecutionStatus.PROCESSING, "record an ambiguous outcome of")
        if error.error_class is not ErrorClass.AMBIGUOUS:
            raise InvariantViolated("only an AMBIGUOUS error is recorded as ambiguous")
        if not reconcilable:
            self._needs_review(error, now)
            return self.status
        self.last_error = error
        self.lease_until = now + settle
        self.updated_at = now
        return self.status

    def rescue(self, *, now: datetime, lease: timedelta, token: str, policy: RetryPolicy) -> bool:
        """Take over a PROCESSING job whose lease expired (its worker died, hung, or lost the answer),
        under a new lease, to reconcile it. Returns False when it was rescued so often without an answer
        from the provider that an operator must look (it is then NEEDS_REVIEW)."""
        if not self.lease_expired(now):
            raise InvariantViolated(f"job {self.id} holds a live lease; only expired leases are rescued")
        self.lease_expirations += 1
        if self.lease_expirations > policy.max_reconciliations:
            self._needs_review(
                JobError(
                    error_class=ErrorClass.AMBIGUOUS,
                    code="unreconciled",
                    message="the provider could not be asked whether the message went out",
                    occurred_at=now,
                ),
                now,
            )
            return False
        self.lease_until = now + lease
        self.lease_token = token
        self.updated_at = now
        return True

    def reconcile(
        self,
        finding: Reconciliation,
        *,
        policy: RetryPolicy,
        now: datetime,
        provider_message_id: str | None = None,
        reason: str = "",
        random: Random = _random,
    ) -> ExecutionStatus:
        """Settle a rescued job with what the provider says about it. Only a proven ABSENT sends again;
        an INCONCLUSIVE lookup (`reason` says why) is never sent again by itself."""
        self._require(ExecutionStatus.PROCESSING, "reconcile")
        match finding:
            case Reconciliation.FOUND:
                if not provider_message_id:
                    raise InvariantViolated("a found message has a provider message id")
                self._sent(provider_message_id, now)
            case Reconciliation.ABSENT:
                # The provider provably does not have it: sending again cannot duplicate it.
                error = JobError(
                    error_class=ErrorClass.TRANSIENT,
                    code="absent_after_lease_expired",
                    message="the provider never got the message; sending again",
                    occurred_at=now,
                )
                self.record_failure(error, policy=policy, now=now, random=random)
            case Reconciliation.INCONCLUSIVE:
                self._needs_review(
                    JobError(
                        error_class=ErrorClass.AMBIGUOUS,
                        code="lookup_inconclusive",
                        message=f"the provider's answer does not prove the message never left: {reason}",
                        occurred_at=now,
                    ),
                    now,
                )
            case Reconciliation.UNSUPPORTED:
                observed = self.last_error if self._last_error_is_ambiguous() else None
                self._needs_review(
                    observed
                    or JobError(
                        error_class=ErrorClass.AMBIGUOUS,
                        code="lease_expired",
                        message="the worker stopped during the send and the provider cannot be asked",
                        occurred_at=now,
                    ),
                    now,
                )
        return self.status

    def _last_error_is_ambiguous(self) -> bool:
        return self.last_error is not None and self.last_error.error_class is ErrorClass.AMBIGUOUS

    # --- after the send ------------------------------------------------------------------------------

    def record_delivery(self, status: DeliveryStatus, *, at: datetime, now: datetime) -> bool:
        """Delivered/read, from the provider, for a SENT job. Only forward moves count (a late DELIVERED
        after READ is dropped). Returns whether anything changed."""
        if status is DeliveryStatus.NONE:
            return False
        if self.status is not ExecutionStatus.SENT:
            return False
        if _DELIVERY_RANK[status] <= _DELIVERY_RANK[self.delivery_status]:
            return False
        self.delivery_status = status
        self.updated_at = now
        self.record(
            MessageDeliveryStatusChanged(
                **self._event_fields(now),
                provider_message_id=self.provider_message_id or "",
                status=status.value,
                status_at=at,
            )
        )
        return True

    def confirm_sent_by_evidence(self, *, provider_message_id: str, now: datetime) -> bool:
        """The provider reported this message (an ack webhook): a job under review was sent after all."""
        if self.status is not ExecutionStatus.NEEDS_REVIEW:
            return False
        self._sent(provider_message_id, now)
        return True

    def fail_after_send(self, error: JobError, *, now: datetime) -> bool:
        """The provider reported later that the send failed (an ERROR ack, e.g. WhatsApp 463 after a
        201/PENDING answer): FAILED for good, never retried by itself. Applies to a job that was SENT, is
        still PROCESSING (the answer not yet recorded) or under review; a repeat, a report about a job
        waiting to be sent, or one about a message already delivered changes nothing. Returns whether the
        job changed."""
        if error.error_class not in (ErrorClass.RESTRICTED, ErrorClass.PERMANENT):
            raise InvariantViolated("a failure reported after the send is RESTRICTED or PERMANENT")
        if self.status not in _FAILS_AFTER_SEND or self.delivery_status is not DeliveryStatus.NONE:
            return False
        self._fail(error, now)
        return True

    # --- operators -----------------------------------------------------------------------------------

    def retry_manually(self, *, actor: str, now: datetime) -> None:
        """An operator sends it again: FAILED or NEEDS_REVIEW only, within the intent's validity. A new
        round of attempts starts; the same client message id is reused, so a provider that accepts it
        cannot deliver both."""
        if self.status not in (ExecutionStatus.FAILED, ExecutionStatus.NEEDS_REVIEW):
            raise FailedPrecondition(
                f"job {self.id} is {self.status}; only FAILED or NEEDS_REVIEW jobs can be retried",
                reason=Reason.JOB_NOT_RETRYABLE,
                metadata={"job_id": self.id, "status": self.status},
            )
        if self.is_expired(now):
            raise FailedPrecondition(
                f"job {self.id}: the intent expired; it can no longer be sent",
                reason=Reason.INTENT_EXPIRED,
                metadata={"job_id": self.id, "intent_id": self.intent_id},
            )
        self.status = ExecutionStatus.PENDING
        self.attempts_base = self.attempts
        self.next_attempt_at = now
        self.updated_at = now
        self.record(
            MessageRetryScheduled(
                **self._event_fields(now),
                attempt=self.attempts,
                next_attempt_at=now,
                error=self.last_error,
                actor=actor,
            )
        )

    # --- internals -----------------------------------------------------------------------------------

    def _require(self, status: ExecutionStatus, action: str) -> None:
        if self.status is not status:
            raise InvariantViolated(f"cannot {action} job {self.id}: it is {self.status}, not {status}")

    def _release(self, now: datetime) -> None:
        self.lease_until = None
        self.lease_token = None
        self.updated_at = now

    def _sent(self, provider_message_id: str, now: datetime) -> None:
        self.status = ExecutionStatus.SENT
        self.provider_message_id = provider_message_id
        self.executed_at = now
        self._release(now)
        self.record(
            MessageSent(
                **self._event_fields(now),
                provider_message_id=provider_message_id,
                attempts=self.attempts,
                sent_at=now,
                campaign_id=self.campaign_id,
                attempt_started_at=self.claimed_at,
            )
        )

    def _fail(self, error: JobError, now: datetime) -> None:
        self.status = ExecutionStatus.FAILED
        self.last_error = error
        self._release(now)
        self.record(
            MessageFailed(
                **self._event_fields(now),
                error=error,
                attempts=self.attempts,
                failed_at=now,
                campaign_id=self.campaign_id,
                attempt_started_at=self.claimed_at,
            )
        )

    def _needs_review(self, error: JobError, now: datetime) -> None:
        self.status = ExecutionStatus.NEEDS_REVIEW
        self.last_error = error
        self._release(now)
        self.record(
            MessageNeedsReview(
                **self._event_fields(now),
                attempts=self.attempts,
                error=error,
                attempt_started_at=self.claimed_at,
            )
        )

    def _schedule_retry(self, error: JobError, policy: RetryPolicy, now: datetime, random: Random) -> None:
        delay = policy.delay(
            self.attempts_in_round,
            random=random,
            retry_after_seconds=error.retry_after_seconds,
        )
        self.status = ExecutionStatus.RETRY
        self.last_error = error
        self.next_attempt_at = now + delay
        self._release(now)
        self.record(
            MessageRetryScheduled(
                **self._event_fields(now),
                attempt=self.attempts,
                next_attempt_at=self.next_attempt_at,
                error=error,
                actor="",
                attempt_started_at=self.claimed_at,
            )
        )

    def _event_fields(self, now: datetime) -> _JobEventFields:
        return {
            "event_id": new_id(),
            "organization_id": self.organization_id,
            "aggregate_id": self.id,
            "occurred_at": now,
            "correlation_id": self.intent_id,
            "job_id": self.id,
            "intent_id": self.intent_id,
            "instance_id": self.instance_id,
            "provider": self.provider,
        }
