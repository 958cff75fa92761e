"""Workers take runnable jobs: PROCESSING under a lease, committed before any provider call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from executor_service.domain.job import MessageExecutionJob
from executor_service.domain.ports import ExecutorUnitOfWork
from libs.seedwork.clock import Clock
from libs.seedwork.ids import new_id


@dataclass(frozen=True)
class ClaimJobs:
    """Take up to `limit` due jobs for one worker."""

    limit: int


@dataclass(frozen=True)
class Claim:
    """Jobs one worker holds under one lease token."""

    token: str
    jobs: list[MessageExecutionJob]


class ClaimJobsHandler:
    """Claims up to `limit` due jobs atomically: two workers never hold the same job. The claim (and its
    attempt) is committed before the provider is called, so a crash during the call leaves evidence."""

    def __init__(self, uow: Callable[[], ExecutorUnitOfWork], clock: Clock, *, lease: timedelta) -> None:
        self._uow = uow
        self._clock = clock
        self._lease = lease

    async def __call__(self, command: ClaimJobs) -> Claim:
        token = new_id()
        async with self._uow() as uow:
            now = self._clock.now()
            jobs = await uow.jobs.lock_runnable(now, command.limit)
            for job in jobs:
                job.claim(now=now, lease=self._lease, token=token)
                uow.jobs.save(job)
            if jobs:
                await uow.commit()
        return Claim(token, jobs)


@dataclass(frozen=True)
class ExtendLeases:
    """Keep holding these jobs of claim `token` for another lease."""

    token: str
    job_ids: tuple[str, ...]


@dataclass(frozen=True)
class ClaimNewJobs:
    """Claim jobs that the caller's transaction has just created, for a worker of this process that is idle
    and waits for them: they are sent as soon as that transaction commits, without a claim of their own."""

    jobs: tuple[MessageExecutionJob, ...]


class ClaimNewJobsHandler:
    """Claims the runnable ones among new jobs inside the caller's transaction, so they are written
    PROCESSING under a lease in the same commit that creates them: a crash before the send leaves them to
    the reconciler, as for any claim. Jobs not due yet (a later not_before) stay PENDING."""

    def __init__(self, clock: Clock, *, lease: timedelta) -> None:
        self._clock = clock
        self._lease = lease

    def __call__(self, uow: ExecutorUnitOfWork, command: ClaimNewJobs) -> Claim:
        token = new_id()
        now = self._clock.now()
        jobs = [job for job in command.jobs if job.is_runnable(now)]
        for job in jobs:
            job.claim(now=now, lease=self._lease, token=token)
            uow.jobs.save(job)
        return Claim(token, jobs)


class ExtendLeasesHandler:
    """Keeps the lease of jobs whose provider call is still running; returns how many are still held."""

    def __init__(self, uow: Callable[[], ExecutorUnitOfWork], clock: Clock, *, lease: timedelta) -> None:
        self._uow = uow
        self._clock = clock
        self._lease = lease

    async def __call__(self, command: ExtendLeases) -> int:
        if not command.job_ids:
            return 0
        async with self._uow() as uow:
            until = self._clock.now() + self._lease
            held = await uow.jobs.extend_leases(command.job_ids, token=command.token, until=until)
            await uow.commit()
        return held
