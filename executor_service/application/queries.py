"""Read use cases: every read is scoped to one organization."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from executor_service.domain.job import MessageExecutionJob
from executor_service.domain.ports import ExecutorUnitOfWork, JobFilter
from libs.seedwork.errors import NotFound, Violations
from libs.seedwork.ids import is_valid_id
from libs.seedwork.pagination import PageRequest, next_page_token


def check_scope(violations: Violations, organization_id: str) -> None:
    violations.check(bool(organization_id.strip()), "organization_id", "must not be empty")


class GetJobHandler:
    def __init__(self, uow: Callable[[], ExecutorUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, organization_id: str, job_id: str) -> MessageExecutionJob:
        violations = Violations()
        check_scope(violations, organization_id)
        violations.check(is_valid_id(job_id), "job_id", "must be a job id")
        violations.raise_if_any()
        async with self._uow() as uow:
            job = await uow.jobs.get(organization_id, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        return job


@dataclass(frozen=True)
class JobPage:
    jobs: list[MessageExecutionJob]
    next_page_token: str


class ListJobsHandler:
    def __init__(self, uow: Callable[[], ExecutorUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, organization_id: str, page: PageRequest, where: JobFilter) -> JobPage:
        violations = Violations()
        check_scope(violations, organization_id)
        for name in ("intent_id", "instance_id"):
            value = getattr(where, name)
            violations.check(value is None or is_valid_id(value), name, "must be an id (or empty for any)")
        violations.raise_if_any()
        async with self._uow() as uow:
            jobs = await uow.jobs.list(organization_id, after_id=page.after_id, limit=page.size, where=where)
        last = jobs[-1].id if jobs else None
        return JobPage(jobs, next_page_token(last, full_page=len(jobs) == page.size))
