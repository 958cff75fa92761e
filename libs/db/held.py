"""Connections a hot-path component keeps open between uses (the Gate's group-commit writer, every
service's outbox relay): no pool checkout, pre-ping round trip or reset per use, which cost more than the
work itself when a use is one statement or two."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.stores import outage_of


class HeldConnections:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._idle: list[AsyncConnection] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """An idle held connection, or one from the pool; kept for the next use unless the use raised: a
        connection that failed may be broken, so it goes back to the pool, whose reset and ping on the next
        checkout tell whether it is still good. One that failed because the server went away is discarded
        instead: its reset would only fail too (and the pool logs that as an error with a traceback)."""
        connection = self._idle.pop() if self._idle else await self._engine.connect()
        try:
            yield connection
        except BaseException as exc:
            if isinstance(exc, Exception) and outage_of(exc) is not None:
                await connection.invalidate(exc)
            await connection.close()
            raise
        self._idle.append(connection)

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().close()
