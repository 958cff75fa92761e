"""Read use cases: every read is scoped to one organization."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from executor_service.domain.job import MessageExecutionJob
from executor_service.domain.ports import ExecutorUnitOfWork, JobFilter
from libs.seedwork.errors import NotFound, Reason, Violations
from libs.seedwork.ids import is_valid_id
from libs.seedwork.pagination import Page, PageRequest


def check_scope(violations: Violations, organization_id: str) -> None:
    violations.check(bool(organization_id.strip()), "organization_id", "must not be empty")


@dataclass(frozen=True)
class GetJob:
    organization_id: str
    job_id: str


class GetJobHandler:
    """One job of the organization; NotFound for another organization's."""

    def __init__(self, uow: Callable[[], ExecutorUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: GetJob) -> MessageExecutionJob:
        organization_id, job_id = query.organization_id, query.job_id
        violations = Violations()
        check_scope(violations, organization_id)
        violations.check(is_valid_id(job_id), "job_id", "must be a job id")
        violations.raise_if_any()
        async with self._uow() as uow:
            job = await uow.jobs.get(organization_id, job_id)
        if job is None:
            raise NotFound(
                f"job {job_id} not found", reason=Reason.JOB_NOT_FOUND, metadata={"job_id": job_id}
            )
        return job


@dataclass(frozen=True)
class ListJobs:
    organization_id: str
    page: PageRequest
    where: JobFilter


class ListJobsHandler:
    """A page of the organization's jobs, in creation order, filtered."""

    def __init__(self, uow: Callable[[], ExecutorUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: ListJobs) -> Page[MessageExecutionJob]:
        organization_id, page, where = query.organization_id, query.page, query.where
        violations = Violations()
        check_scope(violations, organization_id)
        for name in ("intent_id", "instance_id"):
            value = getattr(where, name)
            violations.check(value is None or is_valid_id(value), name, "must be an id (or empty for any)")
        violations.raise_if_any()
        async with self._uow() as uow:
            jobs = await uow.jobs.list_page(
                organization_id, after_id=page.after_id, limit=page.size, where=where
            )
        return Page.of(jobs, page, id_of=lambda job: job.id)
