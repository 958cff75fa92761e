from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from libs.seedwork.errors import FailedPrecondition
from libs.seedwork.shared_kernel import ConnectionState, Provider, Purpose
from reputation_service.domain.instance import Instance
from reputation_service.domain.ports import InstanceFilter
from reputation_service.infrastructure.tables import instances


class SqlAlchemyInstanceRepository:
    """Instances as rows. Writes are flushed at commit; updates are optimistic on `version`."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._new: list[Instance] = []
        self._loaded: dict[str, tuple[Instance, int]] = {}

    def add(self, instance: Instance) -> None:
        self._new.append(instance)

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

    async def flush(self) -> None:
        """Write what changed; called by the unit of work right before it commits."""
        if self._new:
            await self._session.execute(insert(instances), [_to_row(i) for i in self._new])
            self._new.clear()
        for instance, loaded_version in list(self._loaded.values()):
            if instance.version == loaded_version:
                continue
            result = await self._session.execute(
                update(instances)
                .where(instances.c.id == instance.id, instances.c.version == loaded_version)
                .values(_to_row(instance))
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise FailedPrecondition(f"instance {instance.id} was changed concurrently; retry")
            self._loaded[instance.id] = (instance, instance.version)

    def _remember(self, row: Any) -> Instance | None:
        if row is None:
            return None
        instance = _to_instance(row)
        self._loaded[instance.id] = (instance, instance.version)
        return instance


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
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )
