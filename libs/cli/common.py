"""What every CLI command module shares: addresses, credentials, deadlines, enum parsing, output."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

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


# Where the API key comes from, first found wins: the key itself, a credentials file named by the
# environment, the file `make run` writes under the working directory.
API_KEY_ENV = "WHATLEAD_API_KEY"
CREDENTIALS_ENV = "WHATLEAD_CREDENTIALS"
DEFAULT_CREDENTIALS = Path(".data") / "credentials.json"


@dataclass(frozen=True)
class Credentials:
    api_key: str
    source: str  # where it was found, for error messages (never the key itself)
    organization_id: str = ""
    role: str = ""


class NoCredentials(SystemExit):
    """No usable API key: one line for the user, exit status 1."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"error: {reason}")


def credentials() -> Credentials:
    key = os.environ.get(API_KEY_ENV, "").strip()
    if key:
        return Credentials(key, API_KEY_ENV)
    named = os.environ.get(CREDENTIALS_ENV, "").strip()
    if named:
        return _read_credentials(Path(named), f"{CREDENTIALS_ENV}={named}", must_exist=True)
    return _read_credentials(Path.cwd() / DEFAULT_CREDENTIALS, str(DEFAULT_CREDENTIALS), must_exist=False)


def _read_credentials(path: Path, source: str, *, must_exist: bool) -> Credentials:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if must_exist:
            raise NoCredentials(f"credentials file not found ({source})") from None
        raise NoCredentials(
            f"no API key: set {API_KEY_ENV}, or {CREDENTIALS_ENV} to a credentials file "
            f"(`make run` writes {DEFAULT_CREDENTIALS})"
        ) from None
    except OSError as error:
        raise NoCredentials(f"cannot read the credentials file ({source}): {error.strerror}") from None
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    key = found.get("api_key") if isinstance(found, dict) else None
    if not isinstance(key, str) or not key.strip():
        raise NoCredentials(f'the credentials file has no "api_key" ({source})')
    return Credentials(
        key.strip(), source, str(found.get("organization_id") or ""), str(found.get("role") or "")
    )


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <key>` to every call of the channel, streams included."""

    def __init__(self, api_key: str) -> None:
        self._metadata = ("authorization", f"Bearer {api_key}")

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._with_key(client_call_details), request)

    def intercept_unary_stream(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._with_key(client_call_details), request)

    def _with_key(self, client_call_details: Any) -> Any:
        return client_call_details._replace(metadata=[*(client_call_details.metadata or ()), self._metadata])


def channel(service: str) -> grpc.Channel:
    """A channel to `service` whose calls carry the caller's API key; no key is a one-line error."""
    key = credentials().api_key
    return grpc.intercept_channel(grpc.insecure_channel(address(service)), _Bearer(key))


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


def when(moment: Timestamp, *, milliseconds: bool = False) -> str:
    """A proto timestamp as the CLI prints it (UTC, to the second or the millisecond); "-" when unset."""
    if not moment.seconds and not moment.nanos:
        return "-"
    if milliseconds:
        return f"{moment.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M:%S.%f}"[:-3]
    return f"{moment.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M:%S}"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """ "90s", "30m", "1h", "7d" -> a timedelta; anything else is a one-line error."""
    text = text.strip().lower()
    try:
        amount, unit = float(text[:-1]), _UNITS[text[-1:]]
    except (ValueError, KeyError):
        raise SystemExit(f"error: bad duration {text!r}; e.g. 30m, 1h, 7d") from None
    if amount <= 0:
        raise SystemExit(f"error: bad duration {text!r}; it must be positive")
    return timedelta(seconds=amount * unit)


def moment(text: str, now: datetime | None = None) -> datetime:
    """An ISO time (UTC unless it says otherwise) or a duration from now ("2h")."""
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        return (now or datetime.now(UTC)) + duration(text)
    return found if found.tzinfo else found.replace(tzinfo=UTC)


@dataclass
class Backoff:
    """Pauses between resumes of a stream: growing from `first` to at most `maximum` seconds, and no more
    than `attempts` resumes in a row with nothing received in between (then the command gives up)."""

    first: float = 0.2
    maximum: float = 3.0
    attempts: int = 8
    failures: int = 0

    def received(self) -> None:
        self.failures = 0

    def next_delay(self) -> float | None:
        """How long to wait before the next resume; None: give up."""
        self.failures += 1
        if self.failures > self.attempts:
            return None
        return min(self.maximum, self.first * 2.0 ** (self.failures - 1))


class Cancellable(Protocol):
    def cancel(self) -> bool: ...


C = TypeVar("C", bound=Cancellable)


@contextmanager
def cancelled_on_ctrl_c() -> Iterator[Callable[[C], C]]:
    """For following a stream: `with cancelled_on_ctrl_c() as follow: for x in follow(stub.Watch(...))`.

    Ctrl-C cancels the followed calls instead of raising KeyboardInterrupt inside gRPC's own code, which
    can leave the channel unable to close and the exit hanging; the stream then ends, and KeyboardInterrupt
    is raised here, outside gRPC. The calls are cancelled on leaving the block too (a command that has
    what it waited for leaves the stream). Signals reach only the main thread: elsewhere (tests) Ctrl-C is
    not handled here."""
    calls: list[Cancellable] = []
    interrupted = threading.Event()

    def follow(call: C) -> C:
        calls.append(call)
        if interrupted.is_set():
            call.cancel()
        return call

    def on_ctrl_c(signum: int, frame: object) -> None:
        interrupted.set()
        for call in calls:
            call.cancel()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_ctrl_c) if in_main_thread else None
    try:
        yield follow
    except grpc.RpcError as error:
        if interrupted.is_set() and error.code() == grpc.StatusCode.CANCELLED:
            raise KeyboardInterrupt from None
        raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)
        for call in calls:
            call.cancel()
    if interrupted.is_set():
        raise KeyboardInterrupt
