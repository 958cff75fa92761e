"""The kill-switch projection's store on PostgreSQL: the database keeps the newest version of each scope
whatever order the writes come in, and answers the two reads the services make."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import MetaData

from libs.db.controls import SqlAlchemyExecutionControls, execution_controls_table
from libs.db.engine import create_engine, session_factory
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.shared_kernel import ControlScope

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
ORG = "org-acme"
controls = execution_controls_table(MetaData())


def control(
    scope_id: str, *, paused: bool = True, version: int = 1, scope: ControlScope = ControlScope.INSTANCE
) -> ExecutionControl:
    return ExecutionControl(
        organization_id=ORG,
        scope=scope,
        scope_id=scope_id,
        paused=paused,
        paused_until=None,
        version=version,
        updated_at=T0,
    )


@pytest.fixture
async def sessions(postgres_databases):
    engine = create_engine(postgres_databases("controls"))
    async with engine.begin() as connection:
        await connection.run_sync(controls.metadata.create_all)
    yield session_factory(engine)
    await engine.dispose()


async def save(sessions, item: ExecutionControl, projected_at: datetime = T0) -> bool:
    async with sessions() as session:
        stored = await SqlAlchemyExecutionControls(session, controls).save_if_newer(
            item, projected_at=projected_at
        )
        await session.commit()
    return stored


async def paused(sessions) -> list[ExecutionControl]:
    async with sessions() as session:
        return await SqlAlchemyExecutionControls(session, controls).paused()


async def test_a_newer_version_replaces_a_control_and_an_older_one_is_dropped(sessions):
    assert await save(sessions, control("inst-1", version=2))
    assert not await save(sessions, control("inst-1", paused=False, version=1))  # reordered
    assert not await save(sessions, control("inst-1", paused=False, version=2))  # redelivered
    assert await paused(sessions) == [control("inst-1", version=2)]

    assert await save(sessions, control("inst-1", paused=False, version=3))
    assert await paused(sessions) == []


async def test_controls_of_other_scopes_are_kept_apart(sessions):
    assert await save(sessions, control("same-id", scope=ControlScope.INSTANCE))
    assert await save(sessions, control("same-id", scope=ControlScope.CAMPAIGN))
    assert len(await paused(sessions)) == 2


async def test_replicas_reread_what_was_projected_since_they_last_looked(sessions):
    await save(sessions, control("inst-1"), projected_at=T0)
    await save(sessions, control("inst-2", paused=False), projected_at=T0 + timedelta(minutes=1))
    async with sessions() as session:
        store = SqlAlchemyExecutionControls(session, controls)
        assert {c.scope_id for c in await store.projected_since(None)} == {"inst-1", "inst-2"}
        assert [c.scope_id for c in await store.projected_since(T0 + timedelta(seconds=30))] == ["inst-2"]
