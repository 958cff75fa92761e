"""What every CLI command module shares: addresses, credentials, deadlines, enum parsing, output."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from libs.cli import local_stack
from libs.rpc.client import service_config_options
from libs.rpc.convert import ProtoEnum, enum_prefix

V = TypeVar("V", bound=int)


class Commands(Protocol):
    """What `main` hands each command module's `register`: the `whatlead` sub-command list to add to."""

    def add_parser(self, name: str, *, help: str | None = ...) -> argparse.ArgumentParser: ...


DEADLINE_SECONDS = 10.0
OUTPUTS = ("text", "json")


@dataclass(frozen=True)
class Options:
    """What the global options set for one run of the CLI: the output format, the deadline of each call
    (and how long a stream waits to connect), and the addresses given by flag."""

    output: str = "text"
    timeout: float = DEADLINE_SECONDS
    addresses: Mapping[str, str] = field(default_factory=dict)
    called: list[str] = field(default_factory=list)  # the services a channel was opened to, in turn


# Per run (a context variable, so runs in concurrent threads, as the tests make them, stay apart).
_options: ContextVar[Options | None] = ContextVar("whatlead_cli_options", default=None)


def use_options(options: Options) -> None:
    _options.set(options)


def _current() -> Options:
    found = _options.get()
    if found is None:  # a command module used without `main` (a test): the defaults
        found = Options()
        _options.set(found)
    return found


def json_output() -> bool:
    return _current().output == "json"


def deadline() -> float:
    """Seconds a unary call may take, from --timeout."""
    return _current().timeout


class StatusError(Exception):
    """A failure that is not a gRPC answer but means what a status code means (NATS unreachable:
    UNAVAILABLE): the CLI exits with that code's status, as for the server's own."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Where each endpoint is found, first found wins: its flag, its environment variable, the stack file
# `make run` writes in its data folder (while it runs), then `make run`'s ports shifted by
# WHATLEAD_LOCAL_PORT_OFFSET. (environment variable, default port, default form).
ENDPOINTS = {
    "gate": ("WHATLEAD_GATE_ADDR", 50051, "127.0.0.1:{port}"),
    "executor": ("WHATLEAD_EXECUTOR_ADDR", 50052, "127.0.0.1:{port}"),
    "reputation": ("WHATLEAD_REPUTATION_ADDR", 50053, "127.0.0.1:{port}"),
    "ops": ("WHATLEAD_OPS_ADDR", 50054, "127.0.0.1:{port}"),
    "nats": ("WHATLEAD_NATS_URL", 4322, "nats://127.0.0.1:{port}"),
    "gateway": ("WHATLEAD_GATEWAY_URL", 8080, "http://127.0.0.1:{port}"),
    "simulator": ("WHATLEAD_SIMULATOR_URL", 8090, "http://127.0.0.1:{port}"),
}
GRPC_SERVICES = ("gate", "executor", "reputation", "ops")
LOCAL_DATA_ENV = "WHATLEAD_LOCAL_DATA"
PORT_OFFSET_ENV = "WHATLEAD_LOCAL_PORT_OFFSET"


def local_data() -> Path:
    """`make run`'s data folder, as it names it."""
    return Path(os.environ.get(LOCAL_DATA_ENV, ".data"))


@dataclass(frozen=True)
class Endpoint:
    value: str
    source: str  # where it was found, for error messages


def endpoint(name: str, given: str | None = None, flag: str = "") -> Endpoint:
    """Where `name` (a key of ENDPOINTS) is: `given` (a command's own flag `flag`), the global flag, the
    environment, the stack file of a running `make run`, or `make run`'s default."""
    variable, default_port, form = ENDPOINTS[name]
    if given:
        return Endpoint(given, flag or f"--{name}")
    if found := _current().addresses.get(name):
        return Endpoint(found, f"--{name}-addr")
    if found := os.environ.get(variable, "").strip():
        return Endpoint(found, variable)
    stack = local_stack.read(local_data(), _port_offset())
    if stack is not None and (found := stack.endpoints.get(name)):
        return Endpoint(found, str(stack.path))
    return Endpoint(form.format(port=default_port + (_port_offset() or 0)), "the default")


def _port_offset() -> int | None:
    text = os.environ.get(PORT_OFFSET_ENV, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise SystemExit(f"error: {PORT_OFFSET_ENV} must be a whole number, not {text!r}") from None


def address(service: str) -> str:
    return endpoint(service).value


# Where the API key comes from, first found wins: the key itself, a credentials file named by the
# environment, the file `make run` writes in its data folder (.data under the working directory, or
# WHATLEAD_LOCAL_DATA).
API_KEY_ENV = "WHATLEAD_API_KEY"
CREDENTIALS_ENV = "WHATLEAD_CREDENTIALS"
CREDENTIALS_FILE_NAME = "credentials.json"


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
    default = local_data() / CREDENTIALS_FILE_NAME
    return _read_credentials(Path.cwd() / default, str(default), must_exist=False)


def _read_credentials(path: Path, source: str, *, must_exist: bool) -> Credentials:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if must_exist:
            raise NoCredentials(f"credentials file not found ({source})") from None
        raise NoCredentials(
            f"no API key: set {API_KEY_ENV}, or {CREDENTIALS_ENV} to a credentials file "
            f"(`make run` writes {local_data() / CREDENTIALS_FILE_NAME})"
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
    _current().called.append(service)
    # The published service config: each RPC's deadline, and retries of UNAVAILABLE on the reads.
    connection = grpc.insecure_channel(address(service), options=service_config_options())
    return grpc.intercept_channel(connection, _Bearer(key))


def where_called() -> str:
    """ "reputation at 127.0.0.1:50053 from the default": the last service called, for an error saying it
    did not answer; "" before any call."""
    called = _current().called
    if not called:
        return ""
    found = endpoint(called[-1])
    return f"{called[-1]} at {found.value} from {found.source}"


def await_connection(service: str) -> None:
    """Before following a stream (which has no deadline): wait at most --timeout for `service` to accept
    a connection, else fail as UNAVAILABLE naming where it was looked for."""
    found = endpoint(service)
    with grpc.insecure_channel(found.value) as probe:
        try:
            grpc.channel_ready_future(probe).result(timeout=deadline())
        except grpc.FutureTimeoutError:
            raise StatusError(
                grpc.StatusCode.UNAVAILABLE,
                f"no connection to {service} at {found.value} within {deadline():g} s "
                f"(address from {found.source})",
            ) from None


def show(message: Message) -> None:
    print(json_format.MessageToJson(message, indent=2, preserving_proto_field_name=True))


def document(result: Message | Mapping[str, Any]) -> str:
    """One result as one line of JSON: proto JSON with the proto's field names, or a plain mapping."""
    found = (
        json_format.MessageToDict(result, preserving_proto_field_name=True)
        if isinstance(result, Message)
        else result
    )
    return json.dumps(found, ensure_ascii=False, separators=(",", ":"))


def output(result: Message | Mapping[str, Any], text: str | Callable[[], str] | None = None) -> None:
    """Print one result: with --output json one document on one line (flushed, so a pipe reads each as it
    comes); else `text` (or the message as indented JSON, as `show` prints it)."""
    if json_output():
        print(document(result), flush=True)
    elif text is None:
        if isinstance(result, Message):
            show(result)
        else:
            print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(text() if callable(text) else text, flush=True)


def say(text: str) -> None:
    """A remark for people (nothing found, what to do next): stdout in text, stderr with --output json,
    where stdout holds only documents."""
    print(text, file=sys.stderr if json_output() else sys.stdout)


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
