"""Send one claimed job through its provider and record what happened."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from executor_service.application.instances import apply_restriction, instance_for
from executor_service.application.ports import (
    CapabilitiesOf,
    InstanceDirectory,
    KillSwitch,
    MessageSender,
    can_look_up,
)
from executor_service.domain.events import MessageFailed
from executor_service.domain.job import ExecutionStatus, MessageExecutionJob, Random
from executor_service.domain.outcome import ErrorClass, SendFailed
from executor_service.domain.ports import ExecutorUnitOfWork
from executor_service.domain.retry_policy import RetryPolicy
from libs.seedwork.clock import Clock
from libs.seedwork.errors import FailedPrecondition, RefusedByStore

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What one execution did, for metrics and logs."""

    SENT = "SENT"
    RETRY = "RETRY"
    FAILED = "FAILED"
    NEEDS_REVIEW = "NEEDS_REVIEW"
    AMBIGUOUS = "AMBIGUOUS"  # kept PROCESSING until it settles, then reconciled
    PAUSED = "PAUSED"  # held by the kill-switch, no provider call
    HELD = "HELD"  # held by a restriction of the instance (time-lock, logged out, banned), no provider call
    EXPIRED = "EXPIRED"
    LEASE_LOST = "LEASE_LOST"  # another worker took over meanwhile: our outcome was not written
    REFUSED = "REFUSED"  # the store refused the outcome's data: kept PROCESSING, the reconciler settles it


_BY_STATUS = {
    ExecutionStatus.SENT: Outcome.SENT,
    ExecutionStatus.RETRY: Outcome.RETRY,
    ExecutionStatus.FAILED: Outcome.FAILED,
    ExecutionStatus.NEEDS_REVIEW: Outcome.NEEDS_REVIEW,
    ExecutionStatus.PROCESSING: Outcome.AMBIGUOUS,
}


@dataclass(frozen=True)
class ExecuteJob:
    """Send one claimed job (held under its claim's lease)."""

    job: MessageExecutionJob


class ExecuteJobHandler:
    """Runs one claimed job: the intent's validity, the kill-switch, then the instance's restrictions (a
    time-locked, logged-out or banned instance is not called), right before the provider call; then SENT,
    RETRY (backoff), FAILED (permanent, restricted, or out of attempts) or, when the request may have
    left, a settle period before reconciliation where the capability table says the provider can be asked
    (NEEDS_REVIEW where it cannot). Never decides anything else. The outcome is applied to the job, not
    written: RecordOutcomes writes a whole batch of them in one transaction."""

    def __init__(
        self,
        *,
        sender: MessageSender,
        kill_switch: KillSwitch,
        instances: InstanceDirectory,
        capabilities: CapabilitiesOf,
        policy: RetryPolicy,
        clock: Clock,
        settle: timedelta,
        random: Random | None = None,
    ) -> None:
        self._sender = sender
        self._kill_switch = kill_switch
        self._instances = instances
        self._capabilities = capabilities
        self._policy = policy
        self._clock = clock
        self._settle = settle
        self._random = random

    async def __call__(self, command: ExecuteJob) -> Outcome:
        job = command.job
        now = self._clock.now()
        if job.is_expired(now):
            job.expire(now=now)
            return Outcome.EXPIRED
        hold = await self._kill_switch.hold_for(
            organization_id=job.organization_id,
            instance_id=job.instance_id,
            campaign_id=job.campaign_id,
            now=now,
        )
        if hold is not None:
            job.hold(until=self._policy.paused_until(now, hold.until), now=now)
            return Outcome.PAUSED
        restricted = await self._instances.hold_for(job.instance_id, now)
        if restricted is not None:
            # Like a pause: woken when the restriction lifts, else re-checked; the intent's expiry ends it.
            job.hold(until=self._policy.paused_until(now, restricted.until), now=now)
            return Outcome.HELD
        try:
            receipt = await self._sender.send(job)
        except SendFailed as failed:
            now = self._clock.now()
            if failed.error.error_class is ErrorClass.AMBIGUOUS:
                capabilities = self._capabilities(await self._instances.profile_of(job))
                job.record_ambiguous(
                    failed.error,
                    reconcilable=can_look_up(capabilities, job),
                    settle=self._settle,
                    now=now,
                )
            else:
                kwargs = {"random": self._random} if self._random is not None else {}
                job.record_failure(failed.error, policy=self._policy, now=now, **kwargs)
            return _BY_STATUS[job.status]
        job.mark_sent(provider_message_id=receipt.provider_message_id, now=self._clock.now())
        return Outcome.SENT


@dataclass(frozen=True)
class RecordOutcomes:
    """Write what the execution of these jobs did."""

    jobs: tuple[MessageExecutionJob, ...]


class Recorded(StrEnum):
    """Whether a job's outcome was written, and if not, why."""

    WRITTEN = "WRITTEN"
    LEASE_LOST = "LEASE_LOST"  # its version moved: another worker's reconciliation stands
    REFUSED = "REFUSED"  # the store refused one of its values (a provider's id longer than the column...)


class RecordOutcomesHandler:
    """Writes the outcomes of executed jobs, with their events, in one transaction (a group commit).
    A job whose version moved meanwhile (its lease expired and another worker rescued it) is not
    written: the rescuer's reconciliation stands. A job whose outcome the store refuses is not written
    either, and fails no other: it stays PROCESSING until its lease expires and the reconciler settles it
    (ADR 0031). Returns, per job, whether it was written."""

    def __init__(self, uow: Callable[[], ExecutorUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, command: RecordOutcomes) -> list[Recorded]:
        return await self._record(command.jobs)

    async def _record(self, jobs: Sequence[MessageExecutionJob]) -> list[Recorded]:
        pending = [list(job.pending_events) for job in jobs]
        try:
            await self._write(jobs)
            return [Recorded.WRITTEN] * len(jobs)
        except (FailedPrecondition, RefusedByStore) as failure:
            if len(jobs) == 1:
                return [self._not_written(jobs[0], failure)]
        # One of them lost its lease or carries a value the store refuses: write each on its own to find
        # out which (a failed transaction wrote nothing, so none is written twice).
        recorded = []
        for job, events in zip(jobs, pending, strict=True):
            job.pending_events = list(events)
            recorded.append((await self._record([job]))[0])
        return recorded

    @staticmethod
    def _not_written(job: MessageExecutionJob, failure: FailedPrecondition | RefusedByStore) -> Recorded:
        job.pull_events()
        if isinstance(failure, RefusedByStore):
            log.warning(
                "the store refused a job's outcome; the reconciler will settle it",
                extra={"job_id": job.id, "fields": [v.field for v in failure.violations]},
            )
            return Recorded.REFUSED
        log.warning("lease lost before recording an outcome", extra={"job_id": job.id})
        return Recorded.LEASE_LOST

    async def _write(self, jobs: Sequence[MessageExecutionJob]) -> None:
        async with self._uow() as uow:
            for job in jobs:
                uow.jobs.save(job)
                uow.track(job)
                await _record_restriction(uow, job)
            await uow.commit()


async def _record_restriction(uow: ExecutorUnitOfWork, job: MessageExecutionJob) -> None:
    """A send refused for a restriction of the instance (a 463, logged out, banned) holds its other jobs
    too: the fact goes into the instance projection in the same transaction as the job's failure."""
    for event in job.pending_events:
        if isinstance(event, MessageFailed) and event.error.restriction is not None:
            instance = await instance_for(
                uow,
                instance_id=job.instance_id,
                organization_id=job.organization_id,
                provider=job.provider,
                ref=job.provider_instance_ref,
            )
            if apply_restriction(instance, event.error):
                uow.instances.save(instance)
