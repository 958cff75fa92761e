"""What every CLI command module shares: addresses, deadlines, enum parsing, output."""

from __future__ import annotations

import os
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

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


def enum_value(proto_enum: Any, text: str) -> int:
    prefix = proto_enum.Name(0).removesuffix("UNSPECIFIED")
    try:
        return int(proto_enum.Value(prefix + text.strip().upper()))
    except ValueError:
        choices = ", ".join(n.removeprefix(prefix).lower() for n in proto_enum.keys()[1:])
        raise SystemExit(f"unknown value {text!r}; choose from {choices}") from None
