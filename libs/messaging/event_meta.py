"""The `EventMeta` every published event starts with, from the domain event it was mapped from."""

from __future__ import annotations

from libs.rpc.convert import to_timestamp
from libs.seedwork.aggregate import DomainEvent
from whatlead.common.v1 import common_pb2


def event_meta(event: DomainEvent) -> common_pb2.EventMeta:
    """Correlation defaults to the aggregate, so every event of one aggregate's life can be followed."""
    return common_pb2.EventMeta(
        event_id=event.event_id,
        organization_id=event.organization_id,
        aggregate_id=event.aggregate_id,
        correlation_id=event.correlation_id or event.aggregate_id,
        occurred_at=to_timestamp(event.occurred_at),
        actor=event.actor,
    )
