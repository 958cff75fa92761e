"""ProviderEvent (the domain's canonical fact) → ProviderEventReceived (the contract on the bus)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from gateway.domain.events import ProviderEvent, ProviderEventKind, Restriction
from libs.rpc.convert import to_timestamp
from libs.seedwork.shared_kernel import ConnectionState, Provider
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import provider_events_pb2

# Fixed forever: event ids are UUIDv5s of the dedup key in it, so the same fact gets the same id in every
# replica and every retry (JetStream's Nats-Msg-Id), and consumers de-duplicate on it too.
EVENT_ID_NAMESPACE = uuid.UUID("5b0c7f4e-2f0a-4c55-9d57-6a3c1f4be2a1")
_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes
MAX_META_ID = 64  # EventMeta's ids are at most 64 characters (common.proto)

_TYPE = {
    kind: provider_events_pb2.ProviderEventType.Value(f"PROVIDER_EVENT_TYPE_{kind.value}")
    for kind in ProviderEventKind
}
_PROVIDER = {provider: common_pb2.Provider.Value(f"PROVIDER_{provider.value}") for provider in Provider}
_CONNECTION_STATE = {
    state: common_pb2.ConnectionState.Value(f"CONNECTION_STATE_{state.value}") for state in ConnectionState
}
_RESTRICTION = {
    Restriction.TEMPORARY: common_pb2.RESTRICTION_KIND_TEMPORARY_BAN,
    Restriction.PERMANENT: common_pb2.RESTRICTION_KIND_PERMANENT_BAN,
    Restriction.REACHOUT_TIMELOCK: common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK,
}


def event_id(event: ProviderEvent) -> str:
    """uuid.uuid5(EVENT_ID_NAMESPACE, dedup key), formatted without building a UUID object (per event)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + event.dedup_key.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def to_proto(event: ProviderEvent, *, received_at: datetime) -> provider_events_pb2.ProviderEventReceived:
    """`received_at` stands in for when it happened if the provider did not say."""
    # A long group message id does not fit EventMeta: the instance then correlates (consumers match on
    # provider_message_id anyway).
    message_id = event.provider_message_id
    correlation = message_id if message_id and len(message_id) <= MAX_META_ID else event.instance_id
    proto = provider_events_pb2.ProviderEventReceived(
        meta=common_pb2.EventMeta(
            event_id=event_id(event),
            aggregate_id=event.instance_id,
            correlation_id=correlation,
            occurred_at=to_timestamp(event.occurred_at or received_at),
        ),
        type=_TYPE[event.kind],
        provider=_PROVIDER[event.provider],
        instance_id=event.instance_id,
        provider_instance_ref=event.provider_instance_ref,
        provider_message_id=message_id,
        remote_jid=event.remote_jid,
        provider_event_id=event.provider_event_id,
        from_me=event.from_me,
        is_group=event.is_group,
        reply_to_provider_message_id=event.reply_to_provider_message_id,
        ban_code=event.ban_code,
        error_code=event.error_code,
        connection_reason=event.connection_reason,
        text=event.text,
        media_url=event.media_url,
        occurred_at=to_timestamp(event.occurred_at),  # None: left unset, the provider did not say
        timelock_until=to_timestamp(event.timelock_until),
        origin=provider_events_pb2.PROVIDER_EVENT_ORIGIN_WEBHOOK,  # everything the gateway hears
    )
    if event.restriction is not None:
        proto.restriction_kind = _RESTRICTION[event.restriction]
    if event.connection_state is not None:
        proto.connection_state = _CONNECTION_STATE[event.connection_state]
    return proto
