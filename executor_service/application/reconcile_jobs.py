"""Rescue jobs whose worker died (or hung) mid-send: ask the provider, never blindly re-send."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from executor_service.application.ports import CapabilitiesOf, InstanceDirectory, MessageSender, can_look_up
from executor_service.domain.job import ExecutionStatus, MessageExecutionJob, Reconciliation
from executor_service.domain.outcome import SendFailed
from executor_service.domain.ports import ExecutorUnitOfWork
from executor_service.domain.retry_policy import RetryPolicy
from libs.providers.capabilities import LookupVerdict
from libs.seedwork.clock import Clock
from libs.seedwork.errors import FailedPrecondition, RefusedByStore
from libs.seedwork.ids import new_id

log = logging.getLogger(__name__)


@dataclass
class ReconciliationReport:
    """What one pass found, for metrics: how many were sent after all, provably absent, looked up without
    proof, could not be looked up, or need a human (inconclusive and unsupported included)."""

    rescued: int = 0
    found: int = 0
    absent: int = 0
    inconclusive: int = 0  # asked, the answer proves nothing: NEEDS_REVIEW
    unsupported: int = 0  # the provider (or this job, without our id) cannot be asked: NEEDS_REVIEW
    needs_review: int = 0
    unanswered: int = 0  # the provider could not be asked now; tried again after another lease
    by_status: dict[ExecutionStatus, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ReconcileExpiredLeases:
    """Take over and settle up to `limit` jobs whose lease expired."""

    limit: int


class ReconcileExpiredLeasesHandler:
    """Takes over PROCESSING jobs whose lease expired (committed under a new lease first, so two rescuers
    never ask twice), then settles each with the provider's answer, searched from the attempt's claim:
    FOUND → SENT; ABSENT → RETRY (the same client message id is reused), and only where the capability
    table says a miss proves it; INCONCLUSIVE, or a provider (or a job without our id) that cannot be
    asked → NEEDS_REVIEW, never back to sending."""

    def __init__(
        self,
        uow: Callable[[], ExecutorUnitOfWork],
        *,
        sender: MessageSender,
        instances: InstanceDirectory,
        capabilities: CapabilitiesOf,
        policy: RetryPolicy,
        clock: Clock,
        lease: timedelta,
    ) -> None:
        self._uow = uow
        self._sender = sender
        self._instances = instances
        self._capabilities = capabilities
        self._policy = policy
        self._clock = clock
        self._lease = lease

    async def __call__(self, command: ReconcileExpiredLeases) -> ReconciliationReport:
        report = ReconciliationReport()
        token = new_id()
        rescued: list[MessageExecutionJob] = []
        async with self._uow() as uow:
            now = self._clock.now()
            jobs = await uow.jobs.lock_expired_leases(now, command.limit)
            for job in jobs:
                if job.rescue(now=now, lease=self._lease, token=token, policy=self._policy):
                    rescued.append(job)
                else:
                    report.needs_review += 1
                uow.jobs.save(job)
                uow.track(job)
            if jobs:
                await uow.commit()
        report.rescued = len(rescued)
        for job in rescued:
            await self._settle(job, report)
        return report

    async def _settle(self, job: MessageExecutionJob, report: ReconciliationReport) -> None:
        profile = await self._instances.profile_of(job)
        capabilities = self._capabilities(profile)
        if not can_look_up(capabilities, job):
            job.reconcile(Reconciliation.UNSUPPORTED, policy=self._policy, now=self._clock.now())
            report.unsupported += 1
            report.needs_review += 1
        else:
            try:
                result = await self._sender.look_up(job, profile, sent_after=job.claimed_at or job.created_at)
            except SendFailed as failed:
                # Leave the new lease to expire: the next pass asks again (bounded by max_reconciliations).
                log.warning(
                    "provider lookup failed during reconciliation",
                    extra={"job_id": job.id, "code": failed.error.code},
                )
                report.unanswered += 1
                return
            now = self._clock.now()
            verdict, reason = result.verdict, result.reason
            if verdict is LookupVerdict.ABSENT and not capabilities.miss_proves_absence:
                # The table says a miss proves nothing here, whatever the adapter concluded.
                verdict, reason = LookupVerdict.INCONCLUSIVE, "miss_proves_nothing"
            match verdict:
                case LookupVerdict.FOUND:
                    job.reconcile(
                        Reconciliation.FOUND,
                        policy=self._policy,
                        now=now,
                        provider_message_id=result.provider_message_id or job.client_message_id,
                    )
                    report.found += 1
                case LookupVerdict.ABSENT:
                    job.reconcile(Reconciliation.ABSENT, policy=self._policy, now=now)
                    report.absent += 1
                case LookupVerdict.INCONCLUSIVE:
                    job.reconcile(Reconciliation.INCONCLUSIVE, policy=self._policy, now=now, reason=reason)
                    report.inconclusive += 1
                    report.needs_review += 1
        report.by_status[job.status] = report.by_status.get(job.status, 0) + 1
        try:
            async with self._uow() as uow:
                uow.jobs.save(job)
                uow.track(job)
                await uow.commit()
        except FailedPrecondition:
            job.pull_events()
            log.warning("job changed during reconciliation", extra={"job_id": job.id})
        except RefusedByStore as refused:
            # This job's settlement carries a value the store refuses; the others of the pass go on. Its
            # new lease expires and a later pass asks again, up to max_reconciliations, then NEEDS_REVIEW.
            job.pull_events()
            log.warning(
                "the store refused a job's settlement",
                extra={"job_id": job.id, "fields": [v.field for v in refused.violations]},
            )
