"""Proto <-> domain conversions every servicer needs: enums by name, timestamps."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

E = TypeVar("E", bound=StrEnum)


def enum_from_proto(proto_enum: Any, number: int, domain: type[E]) -> E | None:
    """PROVIDER_WAHA -> Provider.WAHA; None for *_UNSPECIFIED or a number this build does not know."""
    return _members(proto_enum, domain).get(number)


@functools.cache
def _members(proto_enum: Any, domain: type[E]) -> dict[int, E]:
    """Proto number -> domain member, for the numbers whose names the domain enum knows (built once per
    pair: requests convert several enums each)."""
    prefix = _prefix(proto_enum)
    values = {member.value for member in domain}
    return {
        number: domain(name.removeprefix(prefix))
        for name, number in proto_enum.items()
        if name.removeprefix(prefix) in values
    }


def enum_to_proto(proto_enum: Any, value: StrEnum | None) -> int:
    if value is None:
        return 0
    return int(proto_enum.Value(_prefix(proto_enum) + value.value))


def _prefix(proto_enum: Any) -> str:
    unspecified = proto_enum.Name(0)
    return unspecified.removesuffix("UNSPECIFIED")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.astimezone(UTC)  # a naive value is local time, as datetime itself reads it
    # Integer arithmetic on the timedelta: exact, and several times cheaper than Timestamp.FromDatetime.
    since = moment - _EPOCH
    return Timestamp(seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000)


def from_timestamp(stamp: Timestamp, *, present: bool = True) -> datetime | None:
    if not present or (stamp.seconds == 0 and stamp.nanos == 0):
        return None
    return stamp.ToDatetime(tzinfo=UTC)
