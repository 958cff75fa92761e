"""Read use cases: every read is scoped to one organization."""

from __future__ import annotations

from collections.abc import Callable

from executor_service.domain.job import MessageExecutionJob
from executor_service.domain.ports import ExecutorUnitOfWork, JobFilter
from libs.seedwork.errors import NotFound, Violations
from libs.seedwork.ids import is_valid_id
from libs.seedwork.pagination import Page, PageRequest


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


class ListJobsHandler:
    def __init__(self, uow: Callable[[], ExecutorUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(
        self, organization_id: str, page: PageRequest, where: JobFilter
    ) -> Page[MessageExecutionJob]:
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
