"""How a protobuf event travels on NATS: subject from the message's own option, type and id in headers."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

import whatlead.events.v1 as events_v1
from libs.messaging.subjects import organization_token
from whatlead.common.v1 import common_pb2

MSG_ID_HEADER = "Nats-Msg-Id"  # JetStream de-duplicates on it within the stream's window
TYPE_HEADER = "Whatlead-Event-Type"  # full protobuf name, so any language can decode the payload


def subject_suffix(message: Message | type[Message]) -> str:
    """'reputation.instance.registered' for InstanceRegistered, read from the proto option."""
    suffix = message.DESCRIPTOR.GetOptions().Extensions[common_pb2.event_subject]
    if not suffix:
        raise ValueError(f"{message.DESCRIPTOR.full_name} declares no event_subject option")
    return suffix


# Events published on their organization's own subject, `<suffix>.<organization token>`, so a watcher of one
# organization reads only its own (their contracts say so).
PER_ORGANIZATION = frozenset({"whatlead.events.v1.IntentChanged"})


def event_subject(message: Message) -> str:
    """The subject (without the root) an event is published on."""
    suffix = subject_suffix(message)
    if message.DESCRIPTOR.full_name in PER_ORGANIZATION:
        meta = meta_of(message)
        if meta is None or not meta.organization_id:
            raise ValueError(f"{message.DESCRIPTOR.full_name} is published per organization: it needs one")
        return f"{suffix}.{organization_token(meta.organization_id)}"
    return suffix


def full_subject(root: str, suffix: str) -> str:
    return f"{root}.{suffix}"


def stream_name(root: str, context: str) -> str:
    return f"{root.upper()}_{context.upper()}"


def context_subjects(root: str, context: str) -> str:
    return f"{root}.{context}.>"


@dataclass(frozen=True)
class EncodedEvent:
    event_id: str
    subject_suffix: str
    type_name: str
    payload: bytes


def meta_of(message: Message) -> common_pb2.EventMeta | None:
    """The EventMeta every event contract starts with; None for a message that is not an event."""
    meta = getattr(message, "meta", None)
    return meta if isinstance(meta, common_pb2.EventMeta) else None


def encode(message: Message) -> EncodedEvent:
    meta = meta_of(message)
    if meta is None or not meta.event_id:
        raise ValueError(f"{message.DESCRIPTOR.full_name} has no meta.event_id")
    return EncodedEvent(
        event_id=meta.event_id,
        subject_suffix=event_subject(message),
        type_name=message.DESCRIPTOR.full_name,
        payload=message.SerializeToString(deterministic=True),
    )


def decode(type_name: str, payload: bytes) -> Message:
    """Parse a payload by its full protobuf name; KeyError when no contract defines the type."""
    message = _message_class(type_name)()
    message.ParseFromString(payload)
    return message


@functools.cache
def _message_class(type_name: str) -> type[Message]:
    # Looked up once per type: consumers decode thousands of events a second.
    _load_event_contracts()
    return message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(type_name))


@functools.cache
def _load_event_contracts() -> None:
    """Import every events module once, so a reader (CLI, audit) can decode any event by name."""
    for module in pkgutil.iter_modules(events_v1.__path__):
        if module.name.endswith("_pb2"):
            importlib.import_module(f"{events_v1.__name__}.{module.name}")
