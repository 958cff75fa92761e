"""The live stream of intent changes on JetStream: the hub that follows every organization's
`ops.intent.changed.<token>` subject, and what it hands to watchers (each change decoded and its response
encoded once, whatever the number of watchers)."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext

from libs.messaging import envelope
from libs.messaging.fanout import FanoutHub, StreamMessage
from libs.messaging.ordered_source import JetStreamMessageSource
from libs.messaging.subjects import organization_token
from whatlead.events.v1 import ops_events_pb2
from whatlead.ops.v1 import ops_pb2

CHANGES = envelope.subject_suffix(ops_events_pb2.IntentChanged)  # ops.intent.changed
_TYPE = ops_events_pb2.IntentChanged.DESCRIPTOR.full_name


@dataclass(frozen=True, slots=True)
class WatchedChange:
    """A change as watchers get it: what their filters read, and the response to write, serialized."""

    intent_id: str
    campaign_id: str
    response: bytes  # a WatchIntentsResponse with the change's position


IntentHub = FanoutHub[WatchedChange]


def watched_change(message: StreamMessage) -> WatchedChange | None:
    if message.headers.get(envelope.TYPE_HEADER) != _TYPE:
        return None
    change = ops_events_pb2.IntentChanged.FromString(message.data).change
    response = ops_pb2.WatchIntentsResponse(change=change, position=str(message.sequence))
    return WatchedChange(change.intent_id, change.campaign_id, response.SerializeToString())


def organization_key(organization_id: str) -> str:
    """The hub's key of an organization's watchers: its subject token."""
    return organization_token(organization_id)


def intent_hub(js: JetStreamContext, subject_root: str, *, ring_size: int) -> IntentHub:
    prefix = envelope.full_subject(subject_root, CHANGES)
    return FanoutHub(
        JetStreamMessageSource(
            js, stream=envelope.stream_name(subject_root, "ops"), subject_filter=f"{prefix}.*"
        ),
        key_of=lambda message: message.subject.rsplit(".", 1)[1],
        decode=watched_change,
        subject_of=lambda key: f"{prefix}.{key}",
        ring_size=ring_size,
    )
