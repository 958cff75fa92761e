"""The ops context's aggregates as rows. Writes are held until the unit of work commits; controls and plans
are updated only if their row still has the version they were read at."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from libs.db.optimistic import OptimisticWrites
from libs.seedwork.access import Role
from libs.seedwork.errors import FailedPrecondition, Reason
from libs.seedwork.shared_kernel import ControlScope
from ops_service.domain.api_key import ApiKey
from ops_service.domain.audit import AuditEntry
from ops_service.domain.control import ControlReason, ControlStatus, ExecutionControl, Scope
from ops_service.domain.organization import Member, Organization
from ops_service.domain.plan import Plan, PlanLimits
from ops_service.domain.ports import ControlFilter
from ops_service.infrastructure.tables import api_keys, audit_entries, controls, members, organizations, plans


class _Inserts:
    """Rows to insert at commit, for the tables whose rows never change."""

    def __init__(self, session: AsyncSession, table: Table) -> None:
        self._session = session
        self._table = table
        self._rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)

    async def flush(self) -> None:
        if self._rows:
            await self._session.execute(insert(self._table), self._rows)
            self._rows = []


class SqlAlchemyOrganizationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._inserts = _Inserts(session, organizations)

    def add(self, organization: Organization) -> None:
        self._inserts.add(
            {"id": organization.id, "name": organization.name, "created_at": organization.created_at}
        )

    async def get(self, organization_id: str) -> Organization | None:
        row = (
            await self._session.execute(select(organizations).where(organizations.c.id == organization_id))
        ).one_or_none()
        return None if row is None else Organization(id=row.id, name=row.name, created_at=row.created_at)

    async def flush(self) -> None:
        await self._inserts.flush()


class SqlAlchemyMemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._inserts = _Inserts(session, members)

    def add(self, member: Member) -> None:
        self._inserts.add(
            {
                "id": member.id,
                "organization_id": member.organization_id,
                "user_id": member.user_id,
                "role": member.role.name,
                "created_at": member.created_at,
            }
        )

    async def get(self, organization_id: str, user_id: str) -> Member | None:
        row = (
            await self._session.execute(
                select(members).where(
                    members.c.organization_id == organization_id, members.c.user_id == user_id
                )
            )
        ).one_or_none()
        return None if row is None else _member(row)

    async def list(self, organization_id: str, *, after_id: str | None, limit: int) -> list[Member]:
        query = select(members).where(members.c.organization_id == organization_id)
        if after_id:
            query = query.where(members.c.id > after_id)
        rows = await self._session.execute(query.order_by(members.c.id).limit(limit))
        return [_member(row) for row in rows]

    async def flush(self) -> None:
        await self._inserts.flush()


def _member(row: Any) -> Member:
    return Member(
        id=row.id,
        organization_id=row.organization_id,
        user_id=row.user_id,
        role=Role[row.role],
        created_at=row.created_at,
    )


class SqlAlchemyApiKeyRepository:
    """Keys are inserted once and then only revoked: a revocation is written only over an active row."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._new: list[ApiKey] = []
        self._loaded: dict[str, tuple[ApiKey, datetime | None]] = {}

    def add(self, key: ApiKey) -> None:
        self._new.append(key)

    async def get(self, organization_id: str, key_id: str) -> ApiKey | None:
        return await self._one(api_keys.c.id == key_id, api_keys.c.organization_id == organization_id)

    async def get_any(self, key_id: str) -> ApiKey | None:
        return await self._one(api_keys.c.id == key_id)

    async def find_by_prefix(self, prefix: str) -> ApiKey | None:
        return await self._one(api_keys.c.prefix == prefix)

    async def list(self, organization_id: str, *, after_id: str | None, limit: int) -> list[ApiKey]:
        query = select(api_keys).where(api_keys.c.organization_id == organization_id)
        if after_id:
            query = query.where(api_keys.c.id > after_id)
        rows = await self._session.execute(query.order_by(api_keys.c.id).limit(limit))
        return [_api_key(row) for row in rows]

    async def _one(self, *conditions: Any) -> ApiKey | None:
        row = (await self._session.execute(select(api_keys).where(*conditions))).one_or_none()
        if row is None:
            return None
        key = _api_key(row)
        self._loaded[key.id] = (key, key.revoked_at)
        return key

    async def flush(self) -> None:
        if self._new:
            await self._session.execute(insert(api_keys), [_api_key_row(key) for key in self._new])
            self._new = []
        for key, revoked_at in list(self._loaded.values()):
            if key.revoked_at == revoked_at:
                continue
            connection = await self._session.connection()
            result = await connection.execute(
                update(api_keys)
                .where(api_keys.c.id == key.id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=key.revoked_at)
            )
            if result.rowcount != 1:
                raise FailedPrecondition(
                    f"API key {key.id} was revoked concurrently; retry",
                    reason=Reason.CONCURRENT_MODIFICATION,
                    metadata={"api_key_id": key.id},
                )
            self._loaded[key.id] = (key, key.revoked_at)


def _api_key_row(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "organization_id": key.organization_id,
        "name": key.name,
        "role": key.role.name,
        "prefix": key.prefix,
        "secret_sha256": key.secret_sha256,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "created_by": key.created_by,
    }


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        role=Role[row.role],
        prefix=row.prefix,
        secret_sha256=bytes(row.secret_sha256),
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
    )


class SqlAlchemyControlRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._writes: OptimisticWrites[ExecutionControl] = OptimisticWrites(controls, "control")

    def add(self, control: ExecutionControl) -> None:
        self._writes.add(control)

    async def get(self, scope: Scope) -> ExecutionControl | None:
        query = select(controls).where(
            controls.c.organization_id == scope.organization_id,
            controls.c.scope == scope.scope.value,
            controls.c.scope_id == scope.scope_id,
        )
        row = (await self._session.execute(query.with_for_update())).one_or_none()
        return None if row is None else self._writes.loaded(_control(row))

    async def list_paused(
        self, organization_id: str | None, *, after_id: str | None, limit: int
    ) -> list[ExecutionControl]:
        query = select(controls).where(controls.c.status == ControlStatus.PAUSED.value)
        if organization_id is not None:
            query = query.where(controls.c.organization_id == organization_id)
        if after_id:
            query = query.where(controls.c.id > after_id)
        rows = await self._session.execute(query.order_by(controls.c.id).limit(limit))
        return [_control(row) for row in rows]

    async def expired(self, now: datetime, *, limit: int) -> list[ExecutionControl]:
        query = (
            select(controls)
            .where(
                controls.c.status == ControlStatus.PAUSED.value,
                controls.c.paused_until.is_not(None),
                controls.c.paused_until <= now,
            )
            .order_by(controls.c.paused_until)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [self._writes.loaded(_control(row)) for row in await self._session.execute(query)]

    async def list(
        self, organization_id: str, *, after_id: str | None, limit: int, where: ControlFilter
    ) -> list[ExecutionControl]:
        query = select(controls).where(controls.c.organization_id == organization_id)
        if after_id:
            query = query.where(controls.c.id > after_id)
        if where.scope is not None:
            query = query.where(controls.c.scope == where.scope.value)
        if where.status is not None:
            query = query.where(controls.c.status == where.status.value)
        rows = await self._session.execute(query.order_by(controls.c.id).limit(limit))
        return [_control(row) for row in rows]

    async def flush(self) -> None:
        await self._writes.flush(self._session, _control_row)


def _control_row(control: ExecutionControl) -> dict[str, Any]:
    return {
        "id": control.id,
        "organization_id": control.organization_id,
        "scope": control.scope.value,
        "scope_id": control.scope_id,
        "status": control.status.value,
        "reason": control.reason.value,
        "note": control.note,
        "actor": control.actor,
        "paused_until": control.paused_until,
        "updated_at": control.updated_at,
        "version": control.version,
    }


def _control(row: Any) -> ExecutionControl:
    return ExecutionControl(
        id=row.id,
        organization_id=row.organization_id,
        scope=ControlScope(row.scope),
        scope_id=row.scope_id,
        status=ControlStatus(row.status),
        reason=ControlReason(row.reason),
        note=row.note,
        actor=row.actor,
        paused_until=row.paused_until,
        updated_at=row.updated_at,
        version=row.version,
    )


class SqlAlchemyPlanRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._writes: OptimisticWrites[Plan] = OptimisticWrites(plans, "plan")

    def add(self, plan: Plan) -> None:
        self._writes.add(plan)

    async def get(self, organization_id: str) -> Plan | None:
        row = (
            await self._session.execute(
                select(plans).where(plans.c.organization_id == organization_id).with_for_update()
            )
        ).one_or_none()
        return None if row is None else self._writes.loaded(_plan(row))

    async def list(self, organization_id: str | None, *, after_id: str | None, limit: int) -> list[Plan]:
        query = select(plans)
        if organization_id is not None:
            query = query.where(plans.c.organization_id == organization_id)
        if after_id:
            query = query.where(plans.c.id > after_id)
        rows = await self._session.execute(query.order_by(plans.c.id).limit(limit))
        return [_plan(row) for row in rows]

    async def flush(self) -> None:
        await self._writes.flush(self._session, _plan_row)


def _plan_row(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "organization_id": plan.organization_id,
        "name": plan.name,
        "daily_message_cap": plan.limits.daily_message_cap,
        "monthly_message_cap": plan.limits.monthly_message_cap,
        "max_instances": plan.limits.max_instances,
        "updated_at": plan.updated_at,
        "version": plan.version,
    }


def _plan(row: Any) -> Plan:
    return Plan(
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        limits=PlanLimits(
            daily_message_cap=row.daily_message_cap,
            monthly_message_cap=row.monthly_message_cap,
            max_instances=row.max_instances,
        ),
        updated_at=row.updated_at,
        version=row.version,
    )


class SqlAlchemyAuditLog:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._inserts = _Inserts(session, audit_entries)

    def add(self, entry: AuditEntry) -> None:
        self._inserts.add(
            {
                "id": entry.id,
                "organization_id": entry.organization_id,
                "actor": entry.actor,
                "action": entry.action,
                "target": entry.target,
                "summary": entry.summary,
                "occurred_at": entry.occurred_at,
            }
        )

    async def list(self, organization_id: str, *, before_id: str | None, limit: int) -> list[AuditEntry]:
        query = select(audit_entries).where(audit_entries.c.organization_id == organization_id)
        if before_id:
            query = query.where(audit_entries.c.id < before_id)
        rows = await self._session.execute(query.order_by(audit_entries.c.id.desc()).limit(limit))
        return [
            AuditEntry(
                id=row.id,
                organization_id=row.organization_id,
                actor=row.actor,
                action=row.action,
                target=row.target,
                summary=row.summary,
                occurred_at=row.occurred_at,
            )
            for row in rows
        ]

    async def flush(self) -> None:
        await self._inserts.flush()
