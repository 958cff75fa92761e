"""Instance caps as rows of `instance_allowances`, one per organization with a plan."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.seedwork.clock import Clock
from reputation_service.domain.plan_allowance import InstanceAllowance
from reputation_service.infrastructure.tables import instance_allowances


class SqlAlchemyInstanceAllowances:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self._session = session
        self._clock = clock

    async def lock(self, organization_id: str) -> InstanceAllowance:
        # No row (no plan yet) is unlimited and locks nothing: with no cap there is no slot to race for.
        row = (
            await self._session.execute(
                select(instance_allowances)
                .where(instance_allowances.c.organization_id == organization_id)
                .with_for_update()
            )
        ).one_or_none()
        return InstanceAllowance.unlimited(organization_id) if row is None else _allowance(row)

    async def save_if_newer(self, allowance: InstanceAllowance) -> bool:
        statement = insert(instance_allowances).values(
            organization_id=allowance.organization_id,
            max_instances=allowance.max_instances,
            version=allowance.version,
            updated_at=self._clock.now(),
        )
        upsert = statement.on_conflict_do_update(
            index_elements=[instance_allowances.c.organization_id],
            set_={
                "max_instances": statement.excluded.max_instances,
                "version": statement.excluded.version,
                "updated_at": statement.excluded.updated_at,
            },
            where=instance_allowances.c.version < statement.excluded.version,
        ).returning(instance_allowances.c.organization_id)
        return (await self._session.execute(upsert)).first() is not None


def _allowance(row: Any) -> InstanceAllowance:
    return InstanceAllowance(
        organization_id=row.organization_id, max_instances=row.max_instances, version=row.version
    )
