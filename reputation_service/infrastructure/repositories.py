from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from libs.db.optimistic import OptimisticWrites
from libs.seedwork.shared_kernel import ConnectionState, Provider, ProviderEngine, Purpose
from reputation_service.domain.instance import Instance
from reputation_service.domain.ports import InstanceFilter
from reputation_service.infrastructure.tables import instances


class SqlAlchemyInstanceRepository:
    """Instances as rows. Writes are flushed at commit; updates are optimistic on `version`."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._writes: OptimisticWrites[Instance] = OptimisticWrites(instances, "instance")

    def add(self, instance: Instance) -> None:
        self._writes.add(instance)

    async def get(self, organization_id: str, instance_id: str) -> Instance | None:
        row = (
            await self._session.execute(
                select(instances).where(
                    instances.c.id == instance_id, instances.c.organization_id == organization_id
                )
            )
        ).one_or_none()
        return self._remember(row)

    async def find_by_provider_ref(
        self, organization_id: str, provider: Provider, provider_instance_ref: str
    ) -> Instance | None:
        row = (
            await self._session.execute(
                select(instances).where(
                    instances.c.organization_id == organization_id,
                    instances.c.provider == provider.value,
                    instances.c.provider_instance_ref == provider_instance_ref,
                )
            )
        ).one_or_none()
        return self._remember(row)

    async def due_for_status_check(
        self,
        states: Collection[ConnectionState],
        providers: Collection[Provider],
        *,
        checked_before: datetime,
        limit: int,
    ) -> list[Instance]:
        if not states or not providers:
            return []
        checked = instances.c.connection_checked_at
        query = (
            select(instances)
            .where(
                instances.c.connection_state.in_([s.value for s in states]),
                instances.c.provider.in_([p.value for p in providers]),
                or_(checked.is_(None), checked < checked_before),
            )
            .order_by(checked.asc().nulls_first(), instances.c.id)
            .limit(limit)
        )
        return [_to_instance(row) for row in (await self._session.execute(query)).all()]

    async def confirm_connection(self, instance: Instance) -> None:
        observed = instances.c.connection_observed_at
        await self._session.execute(
            update(instances)
            .where(
                instances.c.id == instance.id,
                instances.c.connection_state == instance.connection_state.value,
                or_(observed.is_(None), observed < instance.connection_observed_at),
            )
            .values(
                connection_observed_at=instance.connection_observed_at,
                connection_reason=instance.connection_reason,
            )
        )

    async def mark_status_checked(self, instance_ids: Collection[str], *, at: datetime) -> None:
        if instance_ids:
            await self._session.execute(
                update(instances)
                .where(instances.c.id.in_(list(instance_ids)))
                .values(connection_checked_at=at)
            )

    async def list(
        self, organization_id: str | None, *, after_id: str | None, limit: int, where: InstanceFilter
    ) -> list[Instance]:
        query = select(instances)
        if organization_id is not None:
            query = query.where(instances.c.organization_id == organization_id)
        if after_id:
            query = query.where(instances.c.id > after_id)
        if where.provider:
            query = query.where(instances.c.provider == where.provider.value)
        if where.connection_state:
            query = query.where(instances.c.connection_state == where.connection_state.value)
        if where.purpose:
            query = query.where(instances.c.purposes.contains(where.purpose.value))
        rows = (await self._session.execute(query.order_by(instances.c.id).limit(limit))).all()
        return [_to_instance(row) for row in rows]

    async def organizations_of(self, instance_ids: Collection[str]) -> dict[str, str]:
        if not instance_ids:
            return {}
        rows = await self._session.execute(
            select(instances.c.id, instances.c.organization_id).where(instances.c.id.in_(list(instance_ids)))
        )
        return {row.id: row.organization_id for row in rows}

    async def count(self, organization_id: str) -> int:
        query = (
            select(func.count()).select_from(instances).where(instances.c.organization_id == organization_id)
        )
        return int((await self._session.execute(query)).scalar_one())

    async def flush(self) -> None:
        """Write what changed; called by the unit of work right before it commits."""
        await self._writes.flush(self._session, _to_row)

    def _remember(self, row: Any) -> Instance | None:
        return self._writes.loaded(_to_instance(row)) if row is not None else None


def _to_row(instance: Instance) -> dict[str, Any]:
    return {
        "id": instance.id,
        "organization_id": instance.organization_id,
        "display_name": instance.display_name,
        "provider": instance.provider.value,
        "provider_instance_ref": instance.provider_instance_ref,
        "phone": instance.phone,
        "purposes": ",".join(sorted(p.value for p in instance.purposes)),
        "connection_state": instance.connection_state.value,
        "provider_version": instance.provider_version,
        "provider_engine": instance.provider_engine.value,
        "connection_reason": instance.connection_reason,
        "connection_observed_at": instance.connection_observed_at,
        "created_at": instance.created_at,
        "updated_at": instance.updated_at,
        "version": instance.version,
    }


def _to_instance(row: Any) -> Instance:
    return Instance(
        id=row.id,
        organization_id=row.organization_id,
        display_name=row.display_name,
        provider=Provider(row.provider),
        provider_instance_ref=row.provider_instance_ref,
        phone=row.phone,
        purposes=frozenset(Purpose(p) for p in row.purposes.split(",") if p),
        connection_state=ConnectionState(row.connection_state),
        provider_version=row.provider_version,
        provider_engine=ProviderEngine(row.provider_engine),
        connection_reason=row.connection_reason,
        connection_observed_at=row.connection_observed_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )
