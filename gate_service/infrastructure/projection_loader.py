"""Loads the projections' durable copy into memory: all of it at start-up, then what other replicas'
consumers changed (each replica keeps its own in-memory view; the consumers are shared)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gate_service.application.ports import InstanceArrivals
from gate_service.domain.projection import GateProjection, InstanceState
from gate_service.infrastructure.rows import row_instance, row_plan
from gate_service.infrastructure.tables import controls, projected_instances, projected_plans
from libs.db.controls import SqlAlchemyExecutionControls

# Rows committed slightly out of order (clock skew between replicas, long transactions) are still seen.
OVERLAP = timedelta(seconds=30)


async def load_projections(
    sessions: async_sessionmaker[AsyncSession],
    projection: GateProjection,
    now: datetime,
    since: datetime | None = None,
    arrivals: InstanceArrivals | None = None,
) -> int:
    """Apply rows changed since `since` (everything when None); version gates drop what memory knows.
    `arrivals` hears of every instance registered or changed (another replica's consumer applied it)."""
    applied = 0
    changed_since = since - OVERLAP if since is not None else None
    async with sessions() as session:
        for row in await _changed_rows(session, projected_instances, changed_since):
            applied += _apply_instance(projection, row_instance(row), now, arrivals)
        for row in await _changed_rows(session, projected_plans, changed_since):
            applied += projection.upsert_plan(row_plan(row))
        for control in await SqlAlchemyExecutionControls(session, controls).projected_since(changed_since):
            applied += projection.upsert_control(control, now)
    return applied


async def _changed_rows(
    session: AsyncSession, table: Table, changed_since: datetime | None
) -> Sequence[Row[Any]]:
    query = select(table)
    if changed_since is not None:
        query = query.where(table.c.changed_at >= changed_since)
    return (await session.execute(query)).all()


def _apply_instance(
    projection: GateProjection, state: InstanceState, now: datetime, arrivals: InstanceArrivals | None
) -> int:
    """The stored instance's registry part and reputation part, each only if newer than memory's."""
    applied = 0
    known = projection.instances.get(state.instance_id)
    if known is None or known.instance_version < state.instance_version:
        upserted = projection.upsert_instance(state, now)
        applied += upserted
        if upserted and arrivals is not None:
            arrivals.arrived(state.organization_id)
    if state.reputation_version and (known is None or known.reputation_version < state.reputation_version):
        applied += projection.apply_reputation(
            state.instance_id,
            score=state.score or 0,
            health=state.health,
            phase=state.phase,
            cooldown_until=state.cooldown_until,
            version=state.reputation_version,
            now=now,
        )
    if state.cooldown_until is not None:
        projection.apply_cooldown(state.instance_id, state.cooldown_until, now)
    return applied
