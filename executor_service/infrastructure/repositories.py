"""Jobs and instances as rows. Job writes are optimistic on `version`; claims lock with SKIP LOCKED."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from executor_service.domain.instance import CappingLevel, InstanceProfile
from executor_service.domain.job import (
    RUNNABLE,
    DeliveryStatus,
    ExecutionStatus,
    MessageExecutionJob,
)
from executor_service.domain.message import OutboundMessage
from executor_service.domain.outcome import ErrorClass, JobError, RestrictionKind
from executor_service.domain.ports import JobFilter
from executor_service.infrastructure.tables import instances, jobs
from libs.seedwork.errors import FailedPrecondition, Reason
from libs.seedwork.shared_kernel import ConnectionState, MessageType, Provider, ProviderEngine, TargetKind

_RUNNABLE = [status.value for status in RUNNABLE]
_HOLD_COLUMNS = {"organization_id", "instance_id", "campaign_id"}


class SqlAlchemyJobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._new: list[MessageExecutionJob] = []
        self._dirty: dict[str, MessageExecutionJob] = {}
        # Whether this transaction makes a job runnable right away (created, retried, released from a
        # pause): the unit of work then wakes a worker after the commit.
        self.made_runnable = False

    def add(self, job: MessageExecutionJob) -> None:
        self._new.append(job)

    def save(self, job: MessageExecutionJob) -> None:
        if all(job is not new for new in self._new):
            self._dirty[job.id] = job

    async def get(self, organization_id: str, job_id: str) -> MessageExecutionJob | None:
        return await self._one(and_(jobs.c.id == job_id, jobs.c.organization_id == organization_id))

    async def get_by_intent(self, intent_id: str) -> MessageExecutionJob | None:
        return await self._one(jobs.c.intent_id == intent_id)

    async def intent_has_job(self, intent_id: str) -> bool:
        if any(job.intent_id == intent_id for job in self._new):
            return True
        found = await self._session.scalar(select(jobs.c.id).where(jobs.c.intent_id == intent_id).limit(1))
        return found is not None

    async def intents_with_jobs(self, intent_ids: Sequence[str]) -> set[str]:
        taken = {job.intent_id for job in self._new}
        taken.update(
            await self._session.scalars(select(jobs.c.intent_id).where(jobs.c.intent_id.in_(intent_ids)))
        )
        return taken

    async def find_by_provider_message_id(self, provider_message_id: str) -> MessageExecutionJob | None:
        return await self._one(jobs.c.provider_message_id == provider_message_id)

    async def find_by_client_message_id(self, client_message_id: str) -> MessageExecutionJob | None:
        return await self._one(jobs.c.client_message_id == client_message_id)

    async def _one(self, condition: Any) -> MessageExecutionJob | None:
        row = (await self._session.execute(select(jobs).where(condition).limit(1))).one_or_none()
        if row is None:
            return None
        # One object per job within a transaction, so changes not yet flushed are seen.
        return self._dirty.get(row.id) or _to_job(row)

    async def list_page(
        self, organization_id: str, *, after_id: str | None, limit: int, where: JobFilter
    ) -> list[MessageExecutionJob]:
        query = select(jobs).where(jobs.c.organization_id == organization_id)
        if after_id:
            query = query.where(jobs.c.id > after_id)
        if where.intent_id:
            query = query.where(jobs.c.intent_id == where.intent_id)
        if where.status:
            query = query.where(jobs.c.status == where.status.value)
        if where.instance_id:
            query = query.where(jobs.c.instance_id == where.instance_id)
        rows = (await self._session.execute(query.order_by(jobs.c.id).limit(limit))).all()
        return [_to_job(row) for row in rows]

    async def lock_runnable(self, now: datetime, limit: int) -> list[MessageExecutionJob]:
        query = (
            select(jobs)
            .where(jobs.c.status.in_(_RUNNABLE), jobs.c.next_attempt_at <= now)
            .order_by(jobs.c.next_attempt_at)
            .limit(limit)
        )
        return await self._locked(query)

    async def lock_expired_leases(self, now: datetime, limit: int) -> list[MessageExecutionJob]:
        query = (
            select(jobs)
            .where(jobs.c.status == ExecutionStatus.PROCESSING.value, jobs.c.lease_until <= now)
            .order_by(jobs.c.lease_until)
            .limit(limit)
        )
        return await self._locked(query)

    async def _locked(self, query: Any) -> list[MessageExecutionJob]:
        # Rows another transaction holds are skipped, never waited for or shared.
        rows = (await self._session.execute(query.with_for_update(skip_locked=True))).all()
        return [_to_job(row) for row in rows]

    async def extend_leases(self, job_ids: Sequence[str], *, token: str, until: datetime) -> int:
        result = await self._write(
            update(jobs)
            .where(
                jobs.c.id.in_(list(job_ids)),
                jobs.c.lease_token == token,
                jobs.c.status == ExecutionStatus.PROCESSING.value,
            )
            .values(lease_until=until)
        )
        return int(result.rowcount or 0)

    async def wake_held(self, organization_id: str, column: str, value: str, now: datetime) -> int:
        if column not in _HOLD_COLUMNS:
            raise ValueError(f"cannot wake jobs by {column}")
        result = await self._write(
            update(jobs)
            .where(
                jobs.c.organization_id == organization_id,
                jobs.c[column] == value,
                jobs.c.held_by_pause.is_(True),
                jobs.c.status.in_(_RUNNABLE),
            )
            .values(next_attempt_at=now, held_by_pause=False, version=jobs.c.version + 1)
        )
        woken = int(result.rowcount or 0)
        self.made_runnable = self.made_runnable or woken > 0
        return woken

    async def wake_instance(self, instance_id: str, now: datetime) -> int:
        result = await self._write(
            update(jobs)
            .where(
                jobs.c.instance_id == instance_id,
                jobs.c.held_by_pause.is_(True),
                jobs.c.status.in_(_RUNNABLE),
            )
            .values(next_attempt_at=now, held_by_pause=False, version=jobs.c.version + 1)
        )
        woken = int(result.rowcount or 0)
        self.made_runnable = self.made_runnable or woken > 0
        return woken

    async def _write(self, statement: Any, parameters: Any = None) -> CursorResult[Any]:
        """An UPDATE on the session's connection (same transaction): its result counts the rows matched."""
        connection = await self._session.connection()
        return await connection.execute(statement, parameters)

    async def flush(self) -> None:
        """Write what changed; called by the unit of work right before it commits."""
        self.made_runnable = self.made_runnable or any(
            job.is_runnable(job.updated_at) for job in (*self._new, *self._dirty.values())
        )
        if self._new:
            await self._session.execute(insert(jobs), [_to_row(job) for job in self._new])
            self._new.clear()
        dirty = list(self._dirty.values())
        self._dirty.clear()
        if not dirty:
            return
        statement = (
            update(jobs)
            .where(jobs.c.id == bindparam("b_id"), jobs.c.version == bindparam("b_version"))
            .values({name: bindparam("v_" + name) for name in _MUTABLE})
        )
        rows = []
        for job in dirty:
            row = {"v_" + name: value for name, value in _to_row(job).items() if name in _MUTABLE}
            row.update(b_id=job.id, b_version=job.version, v_version=job.version + 1)
            rows.append(row)
        if len(rows) > 1:
            # Locked rows cannot change under us; one pipelined batch, checked as a whole.
            result = await self._write(statement, rows)
            if result.rowcount != len(rows):
                raise FailedPrecondition(
                    "jobs were changed concurrently; retry", reason=Reason.CONCURRENT_MODIFICATION
                )
        else:
            for row in rows:
                result = await self._write(statement, row)
                if result.rowcount != 1:
                    raise FailedPrecondition(
                        f"job {row['b_id']} was changed concurrently; retry",
                        reason=Reason.CONCURRENT_MODIFICATION,
                        metadata={"job_id": row["b_id"]},
                    )
        for job in dirty:
            job.version += 1


# --- mapping ------------------------------------------------------------------------------------------

_MUTABLE = (
    "status",
    "attempts",
    "attempts_base",
    "last_error",
    "next_attempt_at",
    "lease_until",
    "lease_token",
    "provider_message_id",
    "delivery_status",
    "held_by_pause",
    "lease_expirations",
    "claimed_at",
    "updated_at",
    "executed_at",
    "version",
)


def _message_json(message: OutboundMessage) -> str:
    fields = {
        "target_kind": message.target_kind.value,
        "recipient": message.recipient,
        "type": message.type.value,
        "text": message.text,
        "audio_url": message.audio_url,
        "media_url": message.media_url,
        "mime_type": message.mime_type,
        "caption": message.caption,
        "emoji": message.emoji,
        "message_ref": message.message_ref,
    }
    return json.dumps({k: v for k, v in fields.items() if v != ""}, separators=(",", ":"))


def _message_of(raw: str) -> OutboundMessage:
    data = json.loads(raw)
    return OutboundMessage(
        target_kind=TargetKind(data.pop("target_kind")),
        recipient=data.pop("recipient"),
        type=MessageType(data.pop("type")),
        **data,
    )


def _error_json(error: JobError | None) -> str | None:
    if error is None:
        return None
    return json.dumps(
        {
            "class": error.error_class.value,
            "code": error.code,
            "message": error.message,
            "restriction": error.restriction.value if error.restriction else None,
            "at": error.occurred_at.isoformat(),
            "retry_after": error.retry_after_seconds,
        },
        separators=(",", ":"),
    )


def _error_of(raw: str | None) -> JobError | None:
    if not raw:
        return None
    data = json.loads(raw)
    return JobError(
        error_class=ErrorClass(data["class"]),
        code=data["code"],
        message=data.get("message", ""),
        restriction=RestrictionKind(data["restriction"]) if data.get("restriction") else None,
        occurred_at=datetime.fromisoformat(data["at"]),
        retry_after_seconds=data.get("retry_after"),
    )


def _to_row(job: MessageExecutionJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "intent_id": job.intent_id,
        "organization_id": job.organization_id,
        "instance_id": job.instance_id,
        "provider": job.provider.value,
        "provider_instance_ref": job.provider_instance_ref,
        "campaign_id": job.campaign_id,
        "message": _message_json(job.message),
        "status": job.status.value,
        "attempts": job.attempts,
        "attempts_base": job.attempts_base,
        "last_error": _error_json(job.last_error),
        "next_attempt_at": job.next_attempt_at,
        "lease_until": job.lease_until,
        "lease_token": job.lease_token,
        "client_message_id": job.client_message_id,
        "provider_message_id": job.provider_message_id,
        "delivery_status": job.delivery_status.value,
        "held_by_pause": job.held_by_pause,
        "lease_expirations": job.lease_expirations,
        "claimed_at": job.claimed_at,
        "expires_at": job.expires_at,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "executed_at": job.executed_at,
        "version": job.version,
    }


def _to_job(row: Any) -> MessageExecutionJob:
    return MessageExecutionJob(
        id=row.id,
        intent_id=row.intent_id,
        organization_id=row.organization_id,
        instance_id=row.instance_id,
        provider=Provider(row.provider),
        provider_instance_ref=row.provider_instance_ref,
        campaign_id=row.campaign_id,
        message=_message_of(row.message),
        status=ExecutionStatus(row.status),
        attempts=row.attempts,
        attempts_base=row.attempts_base,
        last_error=_error_of(row.last_error),
        next_attempt_at=row.next_attempt_at,
        lease_until=row.lease_until,
        lease_token=row.lease_token,
        client_message_id=row.client_message_id,
        provider_message_id=row.provider_message_id,
        delivery_status=DeliveryStatus(row.delivery_status),
        held_by_pause=bool(row.held_by_pause),
        lease_expirations=row.lease_expirations,
        claimed_at=row.claimed_at,
        expires_at=row.expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        executed_at=row.executed_at,
        version=row.version,
    )


# --- instances ----------------------------------------------------------------------------------------

_MAX_REASON = 200


class SqlAlchemyInstanceRepository:
    """The instance projection. `get` locks the row for the transaction (its writers read, apply a fact,
    write back); `get_many` only reads (job creation)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._dirty: dict[str, InstanceProfile] = {}

    async def get(self, instance_id: str) -> InstanceProfile | None:
        if instance_id in self._dirty:
            return self._dirty[instance_id]
        query = select(instances).where(instances.c.instance_id == instance_id).with_for_update()
        row = (await self._session.execute(query)).one_or_none()
        return _to_instance(row) if row is not None else None

    async def get_many(self, instance_ids: Sequence[str]) -> dict[str, InstanceProfile]:
        found = {
            row.instance_id: _to_instance(row)
            for row in await self._session.execute(
                select(instances).where(instances.c.instance_id.in_(list(instance_ids)))
            )
        }
        found.update({i: self._dirty[i] for i in instance_ids if i in self._dirty})
        return found

    async def find_by_ref(self, provider: str, provider_instance_ref: str) -> InstanceProfile | None:
        query = (
            select(instances)
            .where(
                instances.c.provider == provider,
                instances.c.provider_instance_ref == provider_instance_ref,
            )
            .order_by(instances.c.version.desc())
            .limit(1)
            .with_for_update()
        )
        row = (await self._session.execute(query)).one_or_none()
        if row is None:
            return None
        return self._dirty.get(row.instance_id) or _to_instance(row)

    def save(self, profile: InstanceProfile) -> None:
        self._dirty[profile.instance_id] = profile

    async def claim_probes(
        self, now: datetime, *, next_at: datetime, providers: Sequence[str], limit: int
    ) -> list[InstanceProfile]:
        due = (
            select(instances.c.instance_id)
            .where(
                instances.c.provider.in_(list(providers)),
                instances.c.version > 0,  # the registry's: a row known only from facts has no organization
                or_(instances.c.next_probe_at.is_(None), instances.c.next_probe_at <= now),
            )
            .order_by(instances.c.next_probe_at.nulls_first())
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        rows = await self._session.execute(
            update(instances)
            .where(instances.c.instance_id.in_(due))
            .values(next_probe_at=next_at)
            .returning(*instances.c)
        )
        return [_to_instance(row) for row in rows]

    async def restricted(self) -> list[InstanceProfile]:
        """The instances a fact restricts (for the workers' in-memory view)."""
        query = select(instances).where(
            or_(
                instances.c.timelocked.is_(True),
                instances.c.connection_state.in_(
                    [s.value for s in (ConnectionState.LOGGED_OUT, ConnectionState.BANNED)]
                ),
            )
        )
        return [_to_instance(row) for row in await self._session.execute(query)]

    async def flush(self) -> None:
        if not self._dirty:
            return
        rows = [_instance_row(profile) for profile in self._dirty.values()]
        self._dirty.clear()
        statement = pg_insert(instances)
        statement = statement.on_conflict_do_update(
            index_elements=[instances.c.instance_id],
            set_={name: statement.excluded[name] for name in rows[0] if name != "instance_id"},
        )
        await self._session.execute(statement, rows)


def _instance_row(profile: InstanceProfile) -> dict[str, Any]:
    return {
        "instance_id": profile.instance_id,
        "organization_id": profile.organization_id,
        "provider": profile.provider.value,
        "provider_instance_ref": profile.provider_instance_ref,
        "provider_version": profile.provider_version,
        "provider_engine": profile.provider_engine.value,
        "version": profile.version,
        "connection_state": profile.connection.value if profile.connection else None,
        "connection_reason": profile.connection_reason[:_MAX_REASON],
        "connection_at": profile.connection_at,
        "timelocked": profile.timelocked,
        "timelock_until": profile.timelock_until,
        "timelock_at": profile.timelock_at,
        "capping": profile.capping.value if profile.capping else None,
        "quota_used": profile.quota_used,
        "quota_total": profile.quota_total,
        "capping_at": profile.capping_at,
    }


def _to_instance(row: Any) -> InstanceProfile:
    return InstanceProfile(
        instance_id=row.instance_id,
        organization_id=row.organization_id,
        provider=Provider(row.provider),
        provider_instance_ref=row.provider_instance_ref,
        provider_version=row.provider_version,
        provider_engine=ProviderEngine(row.provider_engine),
        version=row.version,
        connection=ConnectionState(row.connection_state) if row.connection_state else None,
        connection_reason=row.connection_reason,
        connection_at=row.connection_at,
        timelocked=bool(row.timelocked),
        timelock_until=row.timelock_until,
        timelock_at=row.timelock_at,
        capping=CappingLevel(row.capping) if row.capping else None,
        quota_used=row.quota_used,
        quota_total=row.quota_total,
        capping_at=row.capping_at,
    )
