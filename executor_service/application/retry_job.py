"""An operator's manual retry of a FAILED or NEEDS_REVIEW job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from executor_service.application.queries import check_scope
from executor_service.domain.job import MessageExecutionJob
from executor_service.domain.ports import ExecutorUnitOfWork
from libs.seedwork.access import named_actor
from libs.seedwork.clock import Clock
from libs.seedwork.errors import NotFound, Reason, Violations
from libs.seedwork.ids import is_valid_id

MAX_ACTOR = 200


@dataclass(frozen=True, kw_only=True)
class RetryJob:
    organization_id: str
    job_id: str
    actor: str  # the name the operator gave, if any (free text)
    caller: str = ""  # the authenticated caller ("key:<id>", "service"); "" outside a request


class RetryJobHandler:
    """Puts the job back to PENDING for a new round of attempts and announces it (MessageRetryScheduled
    with the actor: the operator's name with the caller that acted, e.g. "alice (key:0193…)"). Anything
    but FAILED or NEEDS_REVIEW, or an expired intent: FailedPrecondition."""

    def __init__(self, uow: Callable[[], ExecutorUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, command: RetryJob) -> MessageExecutionJob:
        violations = Violations()
        check_scope(violations, command.organization_id)
        violations.check(is_valid_id(command.job_id), "job_id", "must be a job id")
        violations.check(len(command.actor) <= MAX_ACTOR, "actor", f"must be at most {MAX_ACTOR} characters")
        violations.raise_if_any()
        async with self._uow() as uow:
            job = await uow.jobs.get(command.organization_id, command.job_id)
            if job is None:
                raise NotFound(
                    f"job {command.job_id} not found",
                    reason=Reason.JOB_NOT_FOUND,
                    metadata={"job_id": command.job_id},
                )
            job.retry_manually(actor=named_actor(command.caller, command.actor), now=self._clock.now())
            uow.jobs.save(job)
            uow.track(job)
            await uow.commit()
        return job
