"""In-memory stand-ins for the shared ports, with the same semantics as the real ones."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from libs.seedwork.aggregate import AggregateRoot, DomainEvent


class FakeUnitOfWork:
    """Base for each service's fake unit of work: events become visible in `committed_events` only on
    commit, exactly as the outbox only holds committed events. Subclasses snapshot/restore their
    repositories in `_begin`/`_discard` so a rollback really discards changes."""

    def __init__(self) -> None:
        self.committed_events: list[DomainEvent] = []
        self.commits = 0
        self.inbox: set[tuple[str, str]] = set()
        self._tracked: list[AggregateRoot] = []
        self._emitted: list[DomainEvent] = []
        self._pending_inbox: set[tuple[str, str]] = set()

    async def __aenter__(self) -> Self:
        self._tracked, self._emitted, self._pending_inbox = [], [], set()
        self._begin()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.rollback()

    def _begin(self) -> None:
        """Remember repository state so `rollback` can restore it."""

    def _discard(self) -> None:
        """Restore the state remembered by `_begin`."""

    def _keep(self) -> None:
        """Make the current repository state the committed one."""

    def track(self, aggregate: AggregateRoot) -> None:
        if all(aggregate is not seen for seen in self._tracked):
            self._tracked.append(aggregate)

    def emit(self, event: DomainEvent) -> None:
        self._emitted.append(event)

    async def first_time(self, consumer: str, event_id: str) -> bool:
        key = (consumer, event_id)
        if key in self.inbox or key in self._pending_inbox:
            return False
        self._pending_inbox.add(key)
        return True

    async def commit(self) -> None:
        for aggregate in self._tracked:
            self.committed_events.extend(aggregate.pull_events())
        self.committed_events.extend(self._emitted)
        self.inbox |= self._pending_inbox
        self._tracked, self._emitted, self._pending_inbox = [], [], set()
        self._keep()
        self.commits += 1

    async def rollback(self) -> None:
        for aggregate in self._tracked:
            aggregate.pull_events()
        self._tracked, self._emitted, self._pending_inbox = [], [], set()
        self._discard()

    def events_of(self, kind: type[DomainEvent]) -> list[DomainEvent]:
        return [event for event in self.committed_events if isinstance(event, kind)]
