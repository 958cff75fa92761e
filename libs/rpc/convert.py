"""Proto <-> domain conversions every servicer needs: enums by name, timestamps."""

from __future__ import annotations

import functools
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from libs.seedwork.errors import InvalidArgument

E = TypeVar("E", bound=StrEnum)
# The number type of one proto enum: the generated stubs give each enum its own `ValueType` (an int).
V = TypeVar("V", bound=int)


class ProtoEnum(Hashable, Protocol[V]):
    """A generated proto enum class (`common_pb2.Provider`): its names and numbers, as its stubs type them
    (hashable: conversions are cached per enum)."""

    def Name(self, number: V, /) -> str: ...

    def Value(self, name: str, /) -> V: ...

    def items(self) -> list[tuple[str, V]]: ...


def enum_from_proto(proto_enum: ProtoEnum[V], number: int, domain: type[E]) -> E | None:
    """PROVIDER_WAHA -> Provider.WAHA; None for *_UNSPECIFIED or a number this build does not know."""
    return _members(proto_enum, domain).get(number)


@functools.cache
def _members(proto_enum: ProtoEnum[V], domain: type[E]) -> dict[int, E]:
    """Proto number -> domain member, for the numbers whose names the domain enum knows (built once per
    pair: requests convert several enums each)."""
    prefix = enum_prefix(proto_enum)
    values = {member.value for member in domain}
    return {
        number: domain(name.removeprefix(prefix))
        for name, number in proto_enum.items()
        if name.removeprefix(prefix) in values
    }


def enum_to_proto(proto_enum: ProtoEnum[V], value: StrEnum | None) -> V:
    """Provider.WAHA -> PROVIDER_WAHA; None -> the enum's 0 (*_UNSPECIFIED)."""
    if value is None:
        return proto_enum.Value(_zero_name(proto_enum))
    return proto_enum.Value(enum_prefix(proto_enum) + value.value)


def enum_prefix(proto_enum: ProtoEnum[V]) -> str:
    """What the names of a proto enum start with: "PROVIDER_" for PROVIDER_UNSPECIFIED, PROVIDER_WAHA..."""
    return _zero_name(proto_enum).removesuffix("UNSPECIFIED")


@functools.cache
def _zero_name(proto_enum: ProtoEnum[V]) -> str:
    """The name of the enum's 0, which proto3 makes its first value (PROVIDER_UNSPECIFIED)."""
    return proto_enum.items()[0][0]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.astimezone(UTC)  # a naive value is local time, as datetime itself reads it
    # Integer arithmetic on the timedelta: exact, and several times cheaper than Timestamp.FromDatetime.
    since = moment - _EPOCH
    return Timestamp(seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000)


# What google.protobuf.Timestamp allows, and datetime can hold: 0001-01-01 to 9999-12-31.
MIN_TIMESTAMP_SECONDS, MAX_TIMESTAMP_SECONDS = -62_135_596_800, 253_402_300_799
MAX_NANOS = 999_999_999


def is_valid_timestamp(stamp: Timestamp) -> bool:
    return MIN_TIMESTAMP_SECONDS <= stamp.seconds <= MAX_TIMESTAMP_SECONDS and 0 <= stamp.nanos <= MAX_NANOS


def from_timestamp(stamp: Timestamp, *, present: bool = True, field: str = "timestamp") -> datetime | None:
    """The moment of `stamp` (None when absent or zero); InvalidArgument naming `field` when it is out of
    range or its nanos are malformed. Requests are validated before they get here (libs.rpc.validation):
    this is defence in depth, and covers events too."""
    if not present or (stamp.seconds == 0 and stamp.nanos == 0):
        return None
    if not is_valid_timestamp(stamp):
        raise InvalidArgument.of(field, INVALID_TIMESTAMP)
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


INVALID_TIMESTAMP = "must be a valid timestamp: 0001-01-01 to 9999-12-31, nanos from 0 to 999999999"
