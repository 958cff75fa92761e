"""Domain <-> protobuf for the reputation context: used by the gRPC servicer and the event mapper alike."""

from __future__ import annotations

from google.protobuf.message import Message

from libs.messaging.event_meta import event_meta
from libs.rpc.convert import enum_to_proto, to_timestamp
from libs.seedwork.aggregate import DomainEvent
from reputation_service.domain.events import InstanceChanged, InstanceRegistered
from reputation_service.domain.instance import Instance
from reputation_service.domain.signals import WindowCounts
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import reputation_events_pb2
from whatlead.reputation.v1 import reputation_pb2


def instance_to_proto(instance: Instance) -> reputation_pb2.Instance:
    return reputation_pb2.Instance(
        id=instance.id,
        organization_id=instance.organization_id,
        display_name=instance.display_name,
        provider=enum_to_proto(common_pb2.Provider, instance.provider),
        provider_instance_ref=instance.provider_instance_ref,
        phone=instance.phone,
        purposes=[enum_to_proto(common_pb2.Purpose, p) for p in sorted(instance.purposes)],
        connection_state=enum_to_proto(common_pb2.ConnectionState, instance.connection_state),
        created_at=to_timestamp(instance.created_at),
        updated_at=to_timestamp(instance.updated_at),
        version=instance.version,
        provider_version=instance.provider_version,
        provider_engine=enum_to_proto(common_pb2.ProviderEngine, instance.provider_engine),
    )


def window_counts_to_proto(counts: WindowCounts) -> reputation_pb2.WindowStats:
    return reputation_pb2.WindowStats(
        instance_id=counts.instance_id,
        window_start=to_timestamp(counts.window_start),
        window_end=to_timestamp(counts.window_end),
        sent=counts.sent,
        delivered=counts.delivered,
        read=counts.read,
        replied=counts.replied,
        received=counts.received,
        failed=counts.failed,
        ack_timeouts=counts.ack_timeouts,
        disconnects=counts.disconnects,
        connection_errors=counts.connection_errors,
        delivery_rate=counts.delivery_rate,
        read_rate=counts.read_rate,
        reply_rate=counts.reply_rate,
        avg_send_latency_ms=counts.avg_send_latency_ms,
        p95_send_latency_ms=counts.p95_send_latency_ms,
    )


def event_to_proto(event: DomainEvent) -> Message:
    """The outbox's mapper: every event this context publishes, as its protobuf contract."""
    match event:
        case InstanceRegistered():
            return reputation_events_pb2.InstanceRegistered(
                meta=event_meta(event), instance=instance_to_proto(event.instance)
            )
        case InstanceChanged():
            return reputation_events_pb2.InstanceChanged(
                meta=event_meta(event),
                instance=instance_to_proto(event.instance),
                changed_fields=list(event.changed_fields),
            )
    raise TypeError(f"no protobuf contract for {type(event).__name__}")
