"""Requests checked against their contract before any use case sees them (docs/contracts.md, ADR 0008).

Two steps, both ending in INVALID_ARGUMENT through `libs.rpc.errors`:
- a body that does not decode becomes an `UndecodableRequest` (the deserializer never raises, so gRPC never
  answers UNKNOWN) and is refused as "the request is not a valid <message>";
- a decoded request is checked against the `buf.validate` rules of its .proto, and against the validity of
  its Timestamps and Durations, which those rules cannot see: CEL normalizes `nanos=-1` before comparing.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import protovalidate
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter

from libs.rpc.convert import INVALID_TIMESTAMP, MAX_NANOS, is_valid_timestamp
from libs.seedwork.errors import FieldViolation, InvalidArgument, Reason

log = logging.getLogger(__name__)

UNDECODABLE = Counter(
    "whatlead_grpc_undecodable_requests_total", "Requests whose body did not decode, by method", ["method"]
)

# One validator for the process: it compiles each message type's rules once and keeps them.
_VALIDATOR = protovalidate.Validator()


@dataclass(frozen=True, slots=True)
class UndecodableRequest:
    """What the handler receives instead of a request whose bytes did not decode."""

    message_name: str


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserializer`, returning an UndecodableRequest where it would raise (bad wire format, invalid
    UTF-8, nesting too deep, ...): gRPC turns a deserializer's exception into UNKNOWN with its name."""
    if deserializer is None:
        return None
    message_type = getattr(deserializer, "__self__", None)  # `Message.FromString`, bound to its class
    descriptor = getattr(message_type, "DESCRIPTOR", None)
    marker = UndecodableRequest(descriptor.full_name if isinstance(descriptor, Descriptor) else "request")

    def decode(body: bytes) -> Any:
        try:
            return deserializer(body)
        except Exception:
            return marker

    return decode


def refuse_invalid(method: str, request: object) -> None:
    """Raise InvalidArgument, with a field violation per broken rule, unless `request` keeps its contract."""
    if isinstance(request, UndecodableRequest):
        UNDECODABLE.labels(method).inc()
        _occasional.warning(method, "requests that do not decode were refused")
        raise InvalidArgument(
            [], f"the request is not a valid {request.message_name}", reason=Reason.MALFORMED_REQUEST
        )
    if not isinstance(request, Message):
        return
    try:
        violations = request_violations(request)
    except protovalidate.EvaluationError:
        # A rule that cannot be evaluated on this input (never the rule's own compilation: that is a bug).
        _occasional.warning(method, "requests whose rules could not be evaluated were refused")
        raise InvalidArgument([], "the request could not be validated") from None
    if violations:
        raise InvalidArgument(violations)


def request_violations(message: Message) -> list[FieldViolation]:
    """Every broken rule of `message`: malformed Timestamps and Durations, then its protovalidate rules
    (those of a malformed time field left out: they were evaluated on a normalized value)."""
    malformed = list(_malformed_times(message, ""))
    seen = {v.field for v in malformed}
    ruled = [
        FieldViolation(path, violation.proto.message)
        for violation in _VALIDATOR.collect_violations(message)
        if (path := _field_path(violation.proto.field)) not in seen
    ]
    return malformed + ruled


def _field_path(path: protovalidate.FieldPathPb | None) -> str:
    """protovalidate's FieldPath as a client reads it: `payload.text.text`, `purposes[0]`."""
    if path is None:
        return ""
    parts = []
    for element in path.elements:
        subscript = element.subscript  # a list's index or a map's key, when the element has one
        if subscript is None:
            parts.append(element.field_name)
        elif subscript.field == "index":
            parts.append(f"{element.field_name}[{subscript.value}]")
        else:
            parts.append(f"{element.field_name}[{subscript.value!r}]")
    return ".".join(parts)


# --- Timestamps and Durations ------------------------------------------------------------------------------

_TIMESTAMP = Timestamp.DESCRIPTOR.full_name
_DURATION = Duration.DESCRIPTOR.full_name
_MAX_DURATION_SECONDS = 315_576_000_000  # 10,000 years, as protobuf defines Duration


def _malformed_times(message: Message, prefix: str) -> Iterator[FieldViolation]:
    for field in _time_fields(message.DESCRIPTOR):
        value = getattr(message, field.name)
        path = prefix + field.name
        if field.is_repeated:
            items = value.items() if _is_map(field) else enumerate(value)
            for key, item in items:
                yield from _check_time(item, f"{path}[{key!r}]")
        elif message.HasField(field.name):
            yield from _check_time(value, path)


def _check_time(value: object, path: str) -> Iterator[FieldViolation]:
    if isinstance(value, Timestamp):
        if not is_valid_timestamp(value):
            yield FieldViolation(path, INVALID_TIMESTAMP)
    elif isinstance(value, Duration):
        seconds, nanos = value.seconds, value.nanos
        if not (
            abs(seconds) <= _MAX_DURATION_SECONDS
            and abs(nanos) <= MAX_NANOS
            and (seconds == 0 or nanos == 0 or (seconds > 0) == (nanos > 0))
        ):
            yield FieldViolation(path, "must be a valid duration: nanos within ±999999999, signed as seconds")
    elif isinstance(value, Message):  # not a map of scalars
        yield from _malformed_times(value, path + ".")


@functools.cache
def _time_fields(descriptor: Descriptor) -> tuple[FieldDescriptor, ...]:
    """The fields of a message type that are, or may hold, a Timestamp or a Duration (once per type)."""
    return tuple(
        field
        for field in descriptor.fields
        if field.message_type is not None and _holds_time(field.message_type, frozenset())
    )


def _holds_time(descriptor: Descriptor, visiting: frozenset[str]) -> bool:
    if descriptor.full_name in (_TIMESTAMP, _DURATION):
        return True
    if descriptor.full_name in visiting:  # a recursive type: its other fields decide
        return False
    inside = visiting | {descriptor.full_name}
    return any(f.message_type is not None and _holds_time(f.message_type, inside) for f in descriptor.fields)


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


# --- logging without flooding ------------------------------------------------------------------------------


class _Occasional:
    """At most one WARNING per method and interval, saying how many it stands for: a client sending
    garbage in a loop must not fill the logs (and never with the body)."""

    def __init__(self, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def warning(self, method: str, message: str) -> None:
        key = (method, message)
        now = time.monotonic()
        held = self._held.get(key, 0) + 1
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] = held
            return
        self._last[key] = now
        self._held[key] = 0
        log.warning(message, extra={"method": method, "requests": held})


_occasional = _Occasional(interval_seconds=60.0)
