"""Loads the projections' durable copy into memory: all of it at start-up, then what other replicas'
consumers changed (each replica keeps its own in-memory view; the consumers are shared)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gate_service.application.ports import InstanceArrivals
from gate_service.domain.projection import GateProjection
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
        for table, apply in (
            (projected_instances, "instance"),
            (projected_plans, "plan"),
        ):
            query = select(table)
            if changed_since is not None:
                query = query.where(table.c.changed_at >= changed_since)
            for row in (await session.execute(query)).all():
                if apply == "instance":
                    state = row_instance(row)
                    known = projection.instances.get(state.instance_id)
                    if known is None or known.instance_version < state.instance_version:
                        upserted = projection.upsert_instance(state, now)
                        applied += upserted
                        if upserted and arrivals is not None:
                            arrivals.arrived(state.organization_id)
                    if state.reputation_version and (
                        known is None or known.reputation_version < state.reputation_version
                    ):
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
                else:
                    applied += projection.upsert_plan(row_plan(row))
        for control in await SqlAlchemyExecutionControls(session, controls).projected_since(changed_since):
            applied += projection.upsert_control(control, now)
    return applied
