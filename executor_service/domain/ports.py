"""Storage ports of the executor context: its jobs, its kill-switch and instance projections, in one
transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from executor_service.domain.instance import InstanceProfile
from executor_service.domain.job import ExecutionStatus, MessageExecutionJob
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.unit_of_work import UnitOfWork


@dataclass(frozen=True, kw_only=True)
class JobFilter:
    intent_id: str | None = None
    status: ExecutionStatus | None = None
    instance_id: str | None = None


class JobRepository(Protocol):
    """Jobs, read and written inside the unit of work's transaction."""

    def add(self, job: MessageExecutionJob) -> None: ...

    def save(self, job: MessageExecutionJob) -> None:
        """Write the job's changes at commit, only if nobody changed it since it was read (version);
        otherwise the commit fails with FailedPrecondition."""
        ...

    async def get(self, organization_id: str, job_id: str) -> MessageExecutionJob | None:
        """The job, only if it belongs to this organization."""
        ...

    async def get_by_intent(self, intent_id: str) -> MessageExecutionJob | None: ...

    async def intent_has_job(self, intent_id: str) -> bool:
        """Whether the intent already has its job (cheaper than loading it)."""
        ...

    async def intents_with_jobs(self, intent_ids: Sequence[str]) -> set[str]:
        """Which of these intents already have their job (one query for many)."""
        ...

    async def find_by_provider_message_id(self, provider_message_id: str) -> MessageExecutionJob | None: ...

    async def find_by_client_message_id(self, client_message_id: str) -> MessageExecutionJob | None: ...

    async def list_page(
        self, organization_id: str, *, after_id: str | None, limit: int, where: JobFilter
    ) -> list[MessageExecutionJob]:
        """Jobs in id (creation) order, strictly after `after_id`."""
        ...

    async def lock_runnable(self, now: datetime, limit: int) -> list[MessageExecutionJob]:
        """Up to `limit` due PENDING/RETRY jobs, oldest due first, locked for this transaction so no other
        worker gets them; rows another worker holds are skipped, never waited for."""
        ...

    async def lock_expired_leases(self, now: datetime, limit: int) -> list[MessageExecutionJob]:
        """PROCESSING jobs whose lease ended before `now`, locked like `lock_runnable`."""
        ...

    async def extend_leases(self, job_ids: Sequence[str], *, token: str, until: datetime) -> int:
        """Push the lease of jobs still held by claim `token`; returns how many still are."""
        ...

    async def wake_held(self, organization_id: str, column: str, value: str, now: datetime) -> int:
        """Make jobs held by a pause of this scope runnable now (the pause was lifted)."""
        ...

    async def wake_instance(self, instance_id: str, now: datetime) -> int:
        """Make the held jobs of one instance runnable now (its restriction lifted)."""
        ...


class InstanceRepository(Protocol):
    """The projection of instances: the registry's profile and the provider's facts about each."""

    async def get(self, instance_id: str) -> InstanceProfile | None: ...

    async def get_many(self, instance_ids: Sequence[str]) -> dict[str, InstanceProfile]: ...

    async def find_by_ref(self, provider: str, provider_instance_ref: str) -> InstanceProfile | None:
        """The instance a provider event names by the provider's own reference only."""
        ...

    def save(self, profile: InstanceProfile) -> None:
        """Insert or update the row at commit (one row per instance id)."""
        ...

    async def claim_probes(
        self, now: datetime, *, next_at: datetime, providers: Sequence[str], limit: int
    ) -> list[InstanceProfile]:
        """Up to `limit` instances of these providers whose probe is due, their next probe moved to
        `next_at` in this transaction; rows another replica holds are skipped (one prober per instance)."""
        ...


class ControlRepository(Protocol):
    """The kill-switch projection: the newest control of each scope."""

    async def save_if_newer(self, control: ExecutionControl, *, projected_at: datetime) -> bool:
        """Store the control unless the stored one of its scope is as new (`ExecutionControl.supersedes`);
        True when stored."""
        ...


class ExecutorUnitOfWork(UnitOfWork, Protocol):
    """One transaction over the executor's storage (read-only members: an implementation may hold a
    more specific repository)."""

    @property
    def jobs(self) -> JobRepository: ...

    @property
    def controls(self) -> ControlRepository: ...

    @property
    def instances(self) -> InstanceRepository: ...

    def after_transaction(self, callback: Callable[[bool], None]) -> None:
        """Run `callback(committed)` once this transaction has ended, committed or not (for work that
        must follow the commit, or be given back without it)."""
        ...
