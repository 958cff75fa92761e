"""What every CLI command module shares: addresses, the caller's API key, deadlines, enum parsing, output."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import grpc
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


# Where `make run` writes the first organization's OWNER key, relative to the working directory.
DEFAULT_CREDENTIALS = Path(".data") / "credentials.json"


def api_key() -> str | None:
    """The caller's API key: WHATLEAD_API_KEY, else `api_key` of the JSON file named by
    WHATLEAD_CREDENTIALS, else of `.data/credentials.json` (what `make run` writes); None without any."""
    if key := os.environ.get("WHATLEAD_API_KEY"):
        return key
    named = os.environ.get("WHATLEAD_CREDENTIALS")
    path = Path(named) if named else DEFAULT_CREDENTIALS
    try:
        key = json.loads(path.read_text()).get("api_key")
    except FileNotFoundError:
        if named:
            raise SystemExit(f"WHATLEAD_CREDENTIALS names {named}, which does not exist") from None
        return None
    except (OSError, ValueError, AttributeError) as exc:
        raise SystemExit(f"cannot read the API key from {path}: {type(exc).__name__}") from None
    return key if isinstance(key, str) and key else None


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _PresentKey(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, key: str) -> None:
        self._metadata = [("authorization", f"Bearer {key}")]

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        details = _CallDetails(
            client_call_details.method,
            client_call_details.timeout,
            [*(client_call_details.metadata or ()), *self._metadata],
            client_call_details.credentials,
            client_call_details.wait_for_ready,
            getattr(client_call_details, "compression", None),
        )
        return continuation(details, request)


def channel(service: str) -> grpc.Channel:
    """A channel to `service` whose every call presents the caller's API key (api_key), if any."""
    opened = grpc.insecure_channel(address(service))
    key = api_key()
    return grpc.intercept_channel(opened, _PresentKey(key)) if key else opened


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
