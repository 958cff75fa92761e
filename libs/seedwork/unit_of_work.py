"""The unit-of-work ports every application layer depends on."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from libs.seedwork.aggregate import AggregateRoot, DomainEvent


class UnitOfWork(Protocol):
    """One transaction. Rolls back unless `commit()` was called; on commit, the events of every
    tracked aggregate are stored with the change, atomically."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def track(self, aggregate: AggregateRoot) -> None:
        """Publish this aggregate's pending events when the transaction commits."""
        ...

    def emit(self, event: DomainEvent) -> None:
        """Publish an event that belongs to no loaded aggregate, with the transaction."""
        ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class InboxUnitOfWork(UnitOfWork, Protocol):
    """The transaction of an event consumer: a unit of work that also records which events it applied."""

    async def first_time(self, consumer: str, event_id: str) -> bool:
        """Record that `consumer` handles `event_id` in this transaction; False if it already did."""
        ...
