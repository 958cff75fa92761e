"""What every CLI command module shares: addresses, deadlines, enum parsing, output."""

from __future__ import annotations

import argparse
import os
from typing import Protocol, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from libs.rpc.convert import ProtoEnum, enum_prefix

V = TypeVar("V", bound=int)


class Commands(Protocol):
    """What `main` hands each command module's `register`: the `whatlead` sub-command list to add to."""

    def add_parser(self, name: str, *, help: str | None = ...) -> argparse.ArgumentParser: ...


DEFAULT_ADDRESSES = {
    "gate": "127.0.0.1:50051",
    "executor": "127.0.0.1:50052",
    "reputation": "127.0.0.1:50053",
    "ops": "127.0.0.1:50054",
}
DEADLINE_SECONDS = 10.0


def address(service: str) -> str:
    return os.environ.get(f"WHATLEAD_{service.upper()}_ADDR", DEFAULT_ADDRESSES[service])


def show(message: Message) -> None:
    print(json_format.MessageToJson(message, indent=2, preserving_proto_field_name=True))


def enum_value(proto_enum: ProtoEnum[V], text: str) -> V:
    """ "waha" -> PROVIDER_WAHA: the user types a name without the enum's prefix, in any case."""
    prefix = enum_prefix(proto_enum)
    try:
        return proto_enum.Value(prefix + text.strip().upper())
    except ValueError:
        choices = ", ".join(name.removeprefix(prefix).lower() for name, _ in proto_enum.items()[1:])
        raise SystemExit(f"unknown value {text!r}; choose from {choices}") from None


def enum_label(proto_enum: ProtoEnum[V], number: V) -> str:
    """PROVIDER_WAHA -> "WAHA": a proto enum number as the CLI prints it."""
    return proto_enum.Name(number).removeprefix(enum_prefix(proto_enum))
