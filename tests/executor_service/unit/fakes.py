from __future__ import annotations

import copy
import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from executor_service.application.ports import ProbeFailed, SendReceipt, profile_of
from executor_service.domain.controls import Hold, hold_for
from executor_service.domain.instance import InstanceHealth, InstanceHold, InstanceProfile
from executor_service.domain.job import RUNNABLE, ExecutionStatus, MessageExecutionJob
from executor_service.domain.outcome import SendFailed
from executor_service.domain.ports import JobFilter
from executor_service.infrastructure.provider_sender import job_error_from
from libs.providers.capabilities import (
    Capabilities,
    LookupMethod,
    LookupRequest,
    LookupResult,
    ProviderProfile,
)
from libs.providers.port import ProviderError
from libs.seedwork.clock import Clock
from libs.seedwork.controls import ControlKey, ExecutionControl
from libs.seedwork.errors import FailedPrecondition
from libs.seedwork.shared_kernel import MessageType, Provider
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

    async def wake_instance(self, instance_id: str, now: datetime) -> int:
        woken = 0
        for job in self.rows.values():
            if job.instance_id == instance_id and job.held_by_pause and job.status in RUNNABLE:
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


class FakeInstanceRepository:
    def __init__(self) -> None:
        self.rows: dict[str, InstanceProfile] = {}
        self.next_probe: dict[str, datetime] = {}
        self._dirty: dict[str, InstanceProfile] = {}

    async def get(self, instance_id: str) -> InstanceProfile | None:
        if instance_id in self._dirty:
            return self._dirty[instance_id]
        found = self.rows.get(instance_id)
        return copy.deepcopy(found) if found is not None else None

    async def get_many(self, instance_ids: Sequence[str]) -> dict[str, InstanceProfile]:
        return {i: found for i in instance_ids if (found := await self.get(i)) is not None}

    async def find_by_ref(self, provider: str, provider_instance_ref: str) -> InstanceProfile | None:
        for row in self.rows.values():
            if row.provider.value == provider and row.provider_instance_ref == provider_instance_ref:
                return await self.get(row.instance_id)
        return None

    def save(self, profile: InstanceProfile) -> None:
        self._dirty[profile.instance_id] = profile

    async def claim_probes(
        self, now: datetime, *, next_at: datetime, providers: Sequence[str], limit: int
    ) -> list[InstanceProfile]:
        due = [
            row
            for row in self.rows.values()
            if row.provider.value in providers
            and row.version > 0
            and self.next_probe.get(row.instance_id, now) <= now
        ][:limit]
        for row in due:
            self.next_probe[row.instance_id] = next_at
        return [copy.deepcopy(row) for row in due]

    def flush(self) -> None:
        for instance_id, profile in self._dirty.items():
            self.rows[instance_id] = copy.deepcopy(profile)
            self.rows[instance_id].pending_events = []
        self._dirty.clear()


class FakeExecutorUnitOfWork(FakeUnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.jobs = FakeJobRepository()
        self.controls = FakeControlRepository()
        self.instances = FakeInstanceRepository()
        self._committed: tuple[dict, dict, dict, dict] = ({}, {}, {}, {})

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
        self.instances.flush()
        await super().commit()
        self._committed_now = True

    def _begin(self) -> None:
        self._discard()

    def _keep(self) -> None:
        self._committed = (
            copy.deepcopy(self.jobs.rows),
            dict(self.controls.rows),
            copy.deepcopy(self.instances.rows),
            dict(self.instances.next_probe),
        )

    def _discard(self) -> None:
        self.jobs.rows = copy.deepcopy(self._committed[0])
        self.controls.rows = dict(self._committed[1])
        self.instances.rows = copy.deepcopy(self._committed[2])
        self.instances.next_probe = dict(self._committed[3])
        self.jobs._new.clear()
        self.jobs._dirty.clear()
        self.instances._dirty.clear()

    def stored(self, job_id: str) -> MessageExecutionJob:
        return self.jobs.rows[job_id]

    def instance(self, instance_id: str) -> InstanceProfile:
        return self.instances.rows[instance_id]


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


class FakeInstanceDirectory:
    """Reads the fake unit of work's committed instance rows, without a cache."""

    def __init__(self, uow: FakeExecutorUnitOfWork, *, assumed_timelock: timedelta) -> None:
        self._uow = uow
        self._assumed_timelock = assumed_timelock

    async def hold_for(self, instance_id: str, now: datetime) -> InstanceHold | None:
        instance = self._uow.instances.rows.get(instance_id)
        return instance.hold(now, assumed_timelock=self._assumed_timelock) if instance else None

    async def profile_of(self, job: MessageExecutionJob) -> ProviderProfile:
        return profile_of(self._uow.instances.rows.get(job.instance_id), job.provider)

    def invalidate(self) -> None:
        pass


def capabilities(
    *,
    client_id_types: frozenset[MessageType] = frozenset(MessageType),
    lookup: LookupMethod = LookupMethod.BY_ID,
    miss_proves_absence: bool = True,
) -> Capabilities:
    return Capabilities(
        client_id_types=client_id_types,
        lookup=lookup,
        miss_proves_absence=miss_proves_absence,
        timelock=frozenset(),
    )


class FakeCapabilityTable:
    """The capability table with the rows a test chooses; remembers which profiles it was asked about."""

    def __init__(self, default: Capabilities | None = None) -> None:
        self.default = default or capabilities()
        self.rows: dict[ProviderProfile, Capabilities] = {}
        self.asked: list[ProviderProfile] = []

    def __call__(self, profile: ProviderProfile) -> Capabilities:
        self.asked.append(profile)
        return self.rows.get(profile, self.default)


@dataclass(frozen=True, slots=True)
class FakeSend:
    job_id: str
    instance_ref: str
    message_type: MessageType
    client_message_id: str | None
    provider_message_id: str


class FakeMessageSender:
    """The MessageSender port in memory. Accepts every send unless told otherwise (`fail_next`; an error
    queued with `accept=True` records the send and raises, as a provider whose answer was lost). Lookups
    find what was sent by the job; a miss answers ABSENT unless `miss_is_inconclusive`; `look_up_next`
    scripts the next answers (a LookupResult, or a ProviderError raised as SendFailed)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.sent: list[FakeSend] = []
        self.lookups: list[LookupRequest] = []
        self.miss_is_inconclusive = False
        self._failures: deque[tuple[ProviderError, bool]] = deque()
        self._answers: deque[LookupResult | ProviderError] = deque()
        self._ids = itertools.count(1)

    def fail_next(self, error: ProviderError, *, accept: bool = False) -> None:
        self._failures.append((error, accept))

    def look_up_next(self, *answers: LookupResult | ProviderError) -> None:
        self._answers.extend(answers)

    async def send(self, job: MessageExecutionJob) -> SendReceipt:
        failure = self._failures.popleft() if self._failures else None
        if failure is not None and not failure[1]:
            raise SendFailed(job_error_from(failure[0], self._clock.now()))
        message_id = job.client_message_id or f"FAKE{next(self._ids):012d}"
        self.sent.append(
            FakeSend(job.id, job.provider_instance_ref, job.message.type, job.client_message_id, message_id)
        )
        if failure is not None:
            raise SendFailed(job_error_from(failure[0], self._clock.now()))
        return SendReceipt(message_id)

    async def look_up(
        self, job: MessageExecutionJob, profile: ProviderProfile, *, sent_after: datetime
    ) -> LookupResult:
        self.lookups.append(
            LookupRequest(
                profile=profile,
                instance_ref=job.provider_instance_ref,
                recipient=job.message.recipient,
                message_type=job.message.type,
                client_message_id=job.client_message_id,
                sent_after=sent_after,
            )
        )
        if self._answers:
            answer = self._answers.popleft()
            if isinstance(answer, ProviderError):
                raise SendFailed(job_error_from(answer, self._clock.now()))
            return answer
        for send in self.sent:
            if send.job_id == job.id:
                return LookupResult.found(send.provider_message_id)
        return LookupResult.inconclusive("not_found") if self.miss_is_inconclusive else LookupResult.absent()


class FakeHealthProber:
    """Answers probes from `health` per instance ref; a ref in `failing` raises ProbeFailed."""

    def __init__(self, providers: Sequence[Provider] = (Provider.WAHA,)) -> None:
        self._providers = list(providers)
        self.health: dict[str, InstanceHealth] = {}
        self.failing: dict[str, str] = {}
        self.unprobeable: set[str] = set()
        self.probed: list[str] = []

    def providers(self) -> Sequence[Provider]:
        return self._providers

    def can_probe(self, profile: ProviderProfile, instance_ref: str) -> bool:
        return profile.provider in self._providers and instance_ref not in self.unprobeable

    async def probe(self, profile: ProviderProfile, instance_ref: str) -> InstanceHealth:
        self.probed.append(instance_ref)
        if instance_ref in self.failing:
            raise ProbeFailed(self.failing[instance_ref])
        return self.health.get(instance_ref, InstanceHealth())
