"""Aggregates record domain events; the unit of work writes them to the outbox on commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """A fact that happened inside one aggregate. Infrastructure maps it to a protobuf event."""

    event_id: str
    organization_id: str
    aggregate_id: str
    occurred_at: datetime
    correlation_id: str = ""
    actor: str = ""  # who caused it: "key:<api key id>", "service", or "" for the system itself


@dataclass(kw_only=True, eq=False)
class AggregateRoot:
    """Entity that guards its invariants and remembers the events its changes produced."""

    pending_events: list[DomainEvent] = field(default_factory=list, repr=False, compare=False)

    def record(self, event: DomainEvent) -> None:
        self.pending_events.append(event)

    def pull_events(self) -> list[DomainEvent]:
        events, self.pending_events = self.pending_events, []
        return events
