"""A repository's writes, held until the unit of work commits: new aggregates are inserted, changed ones
updated only if their row still has the version they were read at (optimistic concurrency)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Table, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from libs.seedwork.errors import FailedPrecondition, Reason


class Versioned(Protocol):
    id: str
    version: int


A = TypeVar("A", bound=Versioned)


class OptimisticWrites(Generic[A]):
    """For a table keyed by `id` with a `version` column that the aggregate bumps on every change."""

    def __init__(self, table: Table, noun: str) -> None:
        self._table = table
        self._noun = noun  # names the aggregate in the conflict error
        self._new: list[A] = []
        self._loaded: dict[str, tuple[A, int]] = {}

    def add(self, aggregate: A) -> None:
        self._new.append(aggregate)

    def loaded(self, aggregate: A) -> A:
        """Remember the version read: the update at flush expects to find it still."""
        self._loaded[aggregate.id] = (aggregate, aggregate.version)
        return aggregate

    async def flush(self, session: AsyncSession, to_row: Callable[[A], dict[str, Any]]) -> None:
        """Write what changed; FailedPrecondition when another transaction changed a row first."""
        if self._new:
            await session.execute(insert(self._table), [to_row(a) for a in self._new])
            self._new.clear()
        for aggregate, loaded_version in list(self._loaded.values()):
            if aggregate.version == loaded_version:
                continue
            # On the session's connection (same transaction): its result is a CursorResult, with a rowcount.
            connection = await session.connection()
            result = await connection.execute(
                update(self._table)
                .where(self._table.c.id == aggregate.id, self._table.c.version == loaded_version)
                .values(to_row(aggregate))
            )
            if result.rowcount != 1:
                raise FailedPrecondition(
                    f"{self._noun} {aggregate.id} was changed concurrently; retry",
                    reason=Reason.CONCURRENT_MODIFICATION,
                )
            self._loaded[aggregate.id] = (aggregate, aggregate.version)
