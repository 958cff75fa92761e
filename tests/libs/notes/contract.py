"""The protobuf contract of NoteWritten, built at import instead of generated from a .proto file: the
tests' context must not add a contract to protos/. It declares its subject like every real event does."""

from __future__ import annotations

from typing import Protocol, cast

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from libs.messaging.event_meta import event_meta
from libs.seedwork.aggregate import DomainEvent
from tests.libs.notes.domain import NoteWritten
from whatlead.common.v1 import common_pb2

CONTEXT = "notes"  # its stream: <root>.notes.>
SUBJECT = "notes.note.written"
_FILE = "whatlead/testing/v1/notes.proto"


class NoteWrittenMessage(Protocol):
    """What the built class has beyond Message, for the type checker."""

    @property
    def meta(self) -> common_pb2.EventMeta: ...

    text: str


def _note_written_class() -> type[Message]:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_FILE)
    except KeyError:
        file = descriptor_pb2.FileDescriptorProto(
            name=_FILE,
            package="whatlead.testing.v1",
            syntax="proto3",
            dependency=[common_pb2.DESCRIPTOR.name],
        )
        message = file.message_type.add(name="NoteWritten")
        field = descriptor_pb2.FieldDescriptorProto
        message.field.add(
            name="meta",
            number=1,
            type=field.TYPE_MESSAGE,
            type_name=".whatlead.common.v1.EventMeta",
            label=field.LABEL_OPTIONAL,
        )
        message.field.add(name="text", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
        message.options.Extensions[common_pb2.event_subject] = SUBJECT
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("whatlead.testing.v1.NoteWritten"))


NoteWrittenProto: type[Message] = _note_written_class()


def note_written(message: Message) -> NoteWrittenMessage:
    """A decoded NoteWritten, typed."""
    if message.DESCRIPTOR.full_name != NoteWrittenProto.DESCRIPTOR.full_name:
        raise TypeError(f"{message.DESCRIPTOR.full_name} is not a NoteWritten")
    return cast(NoteWrittenMessage, message)


def event_to_proto(event: DomainEvent) -> Message:
    """The outbox's mapper of the notes context."""
    if not isinstance(event, NoteWritten):
        raise TypeError(f"no protobuf contract for {type(event).__name__}")
    message = NoteWrittenProto()
    written = note_written(message)
    written.meta.CopyFrom(event_meta(event))
    written.text = event.text
    return message
