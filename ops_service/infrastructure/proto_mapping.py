"""Domain ↔ protobuf for the ops context: the events it publishes and the messages its RPCs answer with."""

from __future__ import annotations

from google.protobuf.message import Message

from libs.seedwork.aggregate import DomainEvent


def event_to_proto(event: DomainEvent) -> Message:
    raise TypeError(f"no protobuf mapping for {type(event).__name__}")
