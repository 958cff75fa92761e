"""HeldConnections on PostgreSQL: one connection serves use after use without going back to the pool, and
one whose use failed is handed back to the pool (its reset and ping judge it) instead of being reused."""

from __future__ import annotations

import pytest
from sqlalchemy import QueuePool, text
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.db.engine import create_engine
from libs.db.held import HeldConnections


def checked_out(engine: AsyncEngine) -> int:
    assert isinstance(engine.pool, QueuePool)
    return engine.pool.checkedout()


async def backend_pid(held: HeldConnections) -> int:
    async with held.connection() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_uses_share_one_connection_and_a_failed_one_goes_back_to_the_pool(postgres_databases):
    engine = create_engine(postgres_databases("held"))
    held = HeldConnections(engine)
    try:
        first = await backend_pid(held)
        assert await backend_pid(held) == first
        assert checked_out(engine) == 1  # held between uses: no checkout, ping or reset per use

        with pytest.raises(RuntimeError):
            async with held.connection():
                raise RuntimeError("the use failed: the connection may be broken")
        assert checked_out(engine) == 0  # handed back, not kept

        await backend_pid(held)
        assert checked_out(engine) == 1
    finally:
        await held.close()
        assert checked_out(engine) == 0
        await engine.dispose()
