"""The note aggregate and its one event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from libs.seedwork.aggregate import AggregateRoot, DomainEvent
from libs.seedwork.ids import new_id


@dataclass(frozen=True, kw_only=True)
class NoteWritten(DomainEvent):
    text: str


@dataclass(kw_only=True, eq=False)
class Note(AggregateRoot):
    id: str
    organization_id: str
    text: str
    version: int = 1

    @classmethod
    def write(cls, organization_id: str, text: str, *, now: datetime) -> Note:
        note = cls(id=new_id(), organization_id=organization_id, text=text)
        note._announce(now)
        return note

    def edit(self, text: str, *, now: datetime) -> None:
        self.text = text
        self.version += 1
        self._announce(now)

    def _announce(self, now: datetime) -> None:
        self.record(
            NoteWritten(
                event_id=new_id(),
                organization_id=self.organization_id,
                aggregate_id=self.id,
                occurred_at=now,
                text=self.text,
            )
        )
