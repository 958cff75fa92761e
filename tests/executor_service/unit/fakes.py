from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from executor_service.domain.controls import Hold, hold_for
from executor_service.domain.job import RUNNABLE, ExecutionStatus, MessageExecutionJob
from executor_service.domain.ports import JobFilter
from libs.seedwork.controls import ControlKey, ExecutionControl
from libs.seedwork.errors import FailedPrecondition
from libs.testing.fakes import FakeUnitOfWork


class FakeJobRepository:
    """Rows are copies, as a database's are: a job object held across transactions (by a worker) only
    reaches the store through save(), with the same version check as the real repository."""

    def __init__(self) -> None:
        self.rows: dict[str, MessageExecutionJob] = {}
        self._new: list[MessageExecutionJob] = []
        self._dirty: dict[str, MessageExecutionJob] = {}

    def add(self, job: MessageExecutionJob) -> None:
        if any(row.intent_id == job.intent_id for row in self.rows.values()):
            raise AssertionError("unique intent_id violated")
        self._new.append(job)

    def save(self, job: MessageExecutionJob) -> None:
        if all(job is not new for new in self._new):
            self._dirty[job.id] = job

    def _copy(self, job: MessageExecutionJob | None) -> MessageExecutionJob | None:
        if job is None:
            return None
        return self._dirty.get(job.id) or copy.deepcopy(job)

    async def get(self, organization_id: str, job_id: str) -> MessageExecutionJob | None:
        job = self.rows.get(job_id)
        return self._copy(job) if job is not None and job.organization_id == organization_id else None

    async def get_by_intent(self, intent_id: str) -> MessageExecutionJob | None:
        return self._copy(next((j for j in self.rows.values() if j.intent_id == intent_id), None))

    async def intent_has_job(self, intent_id: str) -> bool:
        return any(j.intent_id == intent_id for j in [*self.rows.values(), *self._new])

    async def intents_with_jobs(self, intent_ids: Sequence[str]) -> set[str]:
        return {intent_id for intent_id in intent_ids if await self.intent_has_job(intent_id)}

    async def find_by_provider_message_id(self, provider_message_id: str) -> MessageExecutionJob | None:
        return self._copy(
            next((j for j in self.rows.values() if j.provider_message_id == provider_message_id), None)
        )

    async def find_by_client_message_id(self, client_message_id: str) -> MessageExecutionJob | None:
        return self._copy(
            next((j for j in self.rows.values() if j.client_message_id == client_message_id), None)
        )

    async def list_page(
        self, organization_id: str, *, after_id: str | None, limit: int, where: JobFilter
    ) -> list[MessageExecutionJob]:
        chosen = sorted(
            (
                j
                for j in self.rows.values()
                if j.organization_id == organization_id
                and (after_id is None or j.id > after_id)
                and (where.intent_id is None or j.intent_id == where.intent_id)
                and (where.status is None or j.status == where.status)
                and (where.instance_id is None or j.instance_id == where.instance_id)
            ),
            key=lambda j: j.id,
        )
        return [copy.deepcopy(j) for j in chosen[:limit]]

    async def lock_runnable(self, now: datetime, limit: int) -> list[MessageExecutionJob]:
        due = sorted(
            (j for j in self.rows.values() if j.status in RUNNABLE and j.next_attempt_at <= now),
            key=lambda j: j.next_attempt_at,
        )
        return [copy.deepcopy(j) for j in due[:limit]]

    async def lock_expired_leases(self, now: datetime, limit: int) -> list[MessageExecutionJob]:
        expired = [j for j in self.rows.values() if j.lease_expired(now)]
        return [copy.deepcopy(j) for j in expired[:limit]]

    async def extend_leases(self, job_ids: Sequence[str], *, token: str, until: datetime) -> int:
        held = 0
        for job_id in job_ids:
            job = self.rows.get(job_id)
            if job is not None and job.lease_token == token and job.status is ExecutionStatus.PROCESSING:
                job.lease_until = until
                held += 1
        return held

    async def wake_held(self, organization_id: str, column: str, value: str, now: datetime) -> int:
        woken = 0
        for job in self.rows.values():
            if (
                job.organization_id == organization_id
                and getattr(job, column) == value
                and job.held_by_pause
                and job.status in RUNNABLE
            ):
                job.next_attempt_at, job.held_by_pause = now, False
                job.version += 1
                woken += 1
        return woken

    def flush(self) -> None:
        for job in self._new:
            self.rows[job.id] = copy.deepcopy(job)
        self._new.clear()
        for job in self._dirty.values():
            stored = self.rows.get(job.id)
            if stored is None or stored.version != job.version:
                self._dirty.clear()
                raise FailedPrecondition(f"job {job.id} was changed concurrently")
        for job in self._dirty.values():
            job.version += 1
            self.rows[job.id] = copy.deepcopy(job)
            self.rows[job.id].pending_events = []
        self._dirty.clear()


class FakeControlRepository:
    def __init__(self) -> None:
        self.rows: dict[ControlKey, ExecutionControl] = {}

    async def save_if_newer(self, control: ExecutionControl, *, projected_at: datetime) -> bool:
        if not control.supersedes(self.rows.get(control.key)):
            return False
        self.rows[control.key] = control
        return True


class FakeExecutorUnitOfWork(FakeUnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.jobs = FakeJobRepository()
        self.controls = FakeControlRepository()
        self._committed: tuple[dict, dict] = ({}, {})

    def __call__(self) -> FakeExecutorUnitOfWork:
        """So the fake itself serves as the use cases' unit-of-work factory."""
        return self

    async def __aenter__(self) -> FakeExecutorUnitOfWork:
        self._endings: list[Callable[[bool], None]] = []
        self._committed_now = False
        return await super().__aenter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        await super().__aexit__(*exc_info)
        for ending in self._endings:
            ending(self._committed_now)

    def after_transaction(self, callback: Callable[[bool], None]) -> None:
        self._endings.append(callback)

    async def commit(self) -> None:
        self.jobs.flush()
        await super().commit()
        self._committed_now = True

    def _begin(self) -> None:
        self._discard()

    def _keep(self) -> None:
        self._committed = (copy.deepcopy(self.jobs.rows), dict(self.controls.rows))

    def _discard(self) -> None:
        self.jobs.rows = copy.deepcopy(self._committed[0])
        self.controls.rows = dict(self._committed[1])
        self.jobs._new.clear()
        self.jobs._dirty.clear()

    def stored(self, job_id: str) -> MessageExecutionJob:
        return self.jobs.rows[job_id]


class FakeKillSwitch:
    def __init__(self) -> None:
        self.controls: list[ExecutionControl] = []
        self.checks = 0

    async def hold_for(
        self, *, organization_id: str, instance_id: str, campaign_id: str, now: datetime
    ) -> Hold | None:
        self.checks += 1
        return hold_for(
            self.controls,
            organization_id=organization_id,
            instance_id=instance_id,
            campaign_id=campaign_id,
            now=now,
        )
