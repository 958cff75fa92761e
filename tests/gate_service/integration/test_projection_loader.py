"""Controls another replica's consumer stored reach this replica's memory: all of them at start-up, then
what was stored since it last looked, whatever time ops gave the change."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gate_service.domain.policies import GatePolicies
from gate_service.domain.projection import GateProjection
from gate_service.infrastructure.projection_loader import load_projections
from gate_service.infrastructure.repositories import SqlAlchemyProjectionStore
from libs.db.engine import create_engine, session_factory
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.shared_kernel import ControlScope

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
ORG = "org-acme"


def organization_control(*, paused: bool, version: int, updated_at: datetime = T0) -> ExecutionControl:
    return ExecutionControl(
        organization_id=ORG,
        scope=ControlScope.ORGANIZATION,
        scope_id=ORG,
        paused=paused,
        paused_until=None,
        version=version,
        updated_at=updated_at,
    )


@pytest.fixture
async def sessions(
    migrated_database: Callable[[str], str],
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(migrated_database("gate_service"))
    yield session_factory(engine)
    await engine.dispose()


async def store(sessions: async_sessionmaker[AsyncSession], control: ExecutionControl, at: datetime) -> None:
    async with sessions() as session:
        await SqlAlchemyProjectionStore(session).save_control(control, at)
        await session.commit()


async def test_a_replica_loads_the_controls_others_stored_then_what_changed_since(sessions):
    await store(sessions, organization_control(paused=True, version=1), at=T0)
    projection = GateProjection(GatePolicies())

    assert await load_projections(sessions, projection, T0) == 1
    assert projection.paused_scope(ORG, "", T0) is ControlScope.ORGANIZATION

    # Delivered late: ops changed it before the replica last looked, the consumer stored it after.
    looked = T0 + timedelta(minutes=5)
    resumed = organization_control(paused=False, version=2, updated_at=T0 + timedelta(seconds=1))
    await store(sessions, resumed, at=looked + timedelta(minutes=1))
    assert await load_projections(sessions, projection, looked, since=looked) == 1
    assert projection.paused_scope(ORG, "", looked) is None


async def test_an_older_version_stored_late_does_not_pause_again(sessions):
    await store(sessions, organization_control(paused=False, version=2), at=T0)
    await store(sessions, organization_control(paused=True, version=1), at=T0 + timedelta(minutes=1))
    projection = GateProjection(GatePolicies())

    await load_projections(sessions, projection, T0 + timedelta(minutes=1))
    assert projection.paused_scope(ORG, "", T0 + timedelta(minutes=1)) is None
