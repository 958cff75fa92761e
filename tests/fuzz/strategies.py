"""Hypothesis strategies built from a protobuf Descriptor: any request of any RPC, without a line per RPC.

`RequestStrategies(hints).message(descriptor)` draws messages of that type: every scalar kind at and
around its type's edges, strings and bytes of the lengths our limits sit on (and hostile ones: NUL,
control and bidi characters, very long), enums with undefined numbers, nested messages (or none),
repeated fields and maps, one oneof member (or none), Timestamps and Durations at and just past their
valid range and near now, FieldMasks naming real and made-up paths.

When a field declares `(buf.validate.field)` rules, its values are drawn just inside and just outside
them (lengths, ranges, patterns, `in`, item counts, timestamp bounds, required). Without rules (or before
the contracts declare them) the plain descriptor is all there is.

`hints` give real values the system knows (a seeded organization, ids of existing intents and jobs, a
valid target): by field name (`"organization_id"`) or by message full name (`"whatlead.common.v1.Target"`),
and drawn three times in four, so a call gets past its first check often enough to reach the use case
and the stores. A message is also drawn valid, and valid with one field replaced by a generated value
(the request a client sends when it gets exactly one thing wrong): valid is the message type's own hint
when it has one, else the message with its hinted fields set and the others at their defaults.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

Strategy = st.SearchStrategy
Hints = Mapping[str, Strategy[Any]]
# A buf.validate rules message (FieldRules, StringRules, ...), read by field name: the builder needs no stub
# of them, and works the same before the contracts declare any.
Rules = Any

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)
_RANGES = {
    FieldDescriptor.TYPE_INT32: INT32,
    FieldDescriptor.TYPE_SINT32: INT32,
    FieldDescriptor.TYPE_SFIXED32: INT32,
    FieldDescriptor.TYPE_INT64: INT64,
    FieldDescriptor.TYPE_SINT64: INT64,
    FieldDescriptor.TYPE_SFIXED64: INT64,
    FieldDescriptor.TYPE_UINT32: UINT32,
    FieldDescriptor.TYPE_FIXED32: UINT32,
    FieldDescriptor.TYPE_UINT64: UINT64,
    FieldDescriptor.TYPE_FIXED64: UINT64,
}

# Lengths where our limits sit (ids 36, organization and campaign 64, display name 100, key 128,
# provider ref 200, caption 1024, URL 2048, text 4096) and one past each.
EDGE_LENGTHS = (36, 37, 64, 65, 100, 101, 128, 129, 200, 201, 1024, 1025, 2048, 2049, 4096, 4097, 70_000)
HOSTILE_STRINGS = (
    "",
    " ",
    "\x00",
    "org\x00",
    "\t\r\n",
    "\u202eevil",  # right-to-left override
    "\ufeff",  # byte order mark
    "\U0001f600" * 3,
    "ǅ" * 40,  # one code point, two UTF-8 bytes: length in characters and in bytes differ
    "'; DROP TABLE intents; --",
    "%s%n%x",
    "../../etc/passwd",
    "${jndi:ldap://x}",
    "0",
    "-1",
    "null",
)
# Printable and not: everything protobuf can carry in a string (no lone surrogates, which are not UTF-8).
TEXT = st.characters(codec="utf-8")

# google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z.
TIMESTAMP_MIN_SECONDS = -62_135_596_800
TIMESTAMP_MAX_SECONDS = 253_402_300_799
DURATION_MAX_SECONDS = 315_576_000_000  # ±10,000 years
NANOS_MAX = 999_999_999
# Offsets from now (seconds) where validity rules sit: the past, now, the default validity (4 h), the
# longest (72 h) and just past it.
NOW_OFFSETS = (-86_400, -1, 0, 1, 60, 3_600, 4 * 3_600, 72 * 3_600 - 1, 72 * 3_600 + 1, 365 * 86_400)

TIMESTAMP = "google.protobuf.Timestamp"
DURATION = "google.protobuf.Duration"
FIELD_MASK = "google.protobuf.FieldMask"


def message_class(descriptor: Descriptor) -> type[Message]:
    return GetMessageClass(descriptor)


def field_rules(field: FieldDescriptor) -> Rules | None:
    """The field's `(buf.validate.field)` rules, or None when the contracts declare none for it (or the
    buf.validate extension is not loaded at all)."""
    extension = _rules_extension()
    if extension is None:
        return None
    options: Any = field.GetOptions()  # the extension is found at run time: its type is not in any stub
    if not options.HasExtension(extension):
        return None
    return options.Extensions[extension]


def _rules_extension() -> FieldDescriptor | None:
    try:
        return descriptor_pool.Default().FindExtensionByName("buf.validate.field")
    except KeyError:
        return None


def _set(rules: Rules, name: str) -> bool:
    """Whether a rule is given: HasField for what has presence, non-empty for repeated rules."""
    descriptor = rules.DESCRIPTOR.fields_by_name.get(name)
    if descriptor is None:
        return False
    if descriptor.is_repeated:
        return len(getattr(rules, name)) > 0
    return rules.HasField(name)


def _kind(rules: Rules | None) -> Rules | None:
    """The type-specific part of FieldRules (its `string`, `int32`, `repeated`, ... member)."""
    if rules is None:
        return None
    which = rules.WhichOneof("type")
    return getattr(rules, which) if which else None


class RequestStrategies:
    """Builds (and caches) a strategy per message type; see the module docstring."""

    def __init__(
        self, hints: Hints | None = None, *, max_depth: int = 4, now: Callable[[], float] = time.time
    ):
        self._hints = dict(hints or {})
        self._max_depth = max_depth
        self._now = now
        self._cache: dict[tuple[str, int], Strategy[Message]] = {}

    # --- messages ---------------------------------------------------------------------------------------

    def message(self, descriptor: Descriptor, depth: int = 0) -> Strategy[Message]:
        key = (descriptor.full_name, depth)
        if key not in self._cache:
            self._cache[key] = st.deferred(lambda: self._message(descriptor, depth))
        return self._cache[key]

    def _message(self, descriptor: Descriptor, depth: int) -> Strategy[Message]:
        if descriptor.full_name == TIMESTAMP:
            return self._timestamp(None)
        if descriptor.full_name == DURATION:
            return self._duration(None)
        generated = self._generated(descriptor, depth)
        valid = self._hints.get(descriptor.full_name)
        if valid is None:
            valid = self._hinted(descriptor)
        if valid is None:
            return generated
        return weighted((1, valid), (2, self._one_field_off(descriptor, valid, depth)), (1, generated))

    def _hinted(self, descriptor: Descriptor) -> Strategy[Message] | None:
        """The message with only its hinted fields set (the others at their defaults), when it has any:
        the valid request a type with no hint of its own starts from (an organization, an existing id)."""
        hinted: dict[FieldDescriptor, Strategy[Any]] = {}
        for field in descriptor.fields:
            hint = self._hints.get(field.name)
            if hint is None and field.message_type is not None:
                hint = self._hints.get(field.message_type.full_name)
            if hint is not None:
                hinted[field] = st.lists(hint, min_size=1, max_size=2) if field.is_repeated else hint
        if not hinted:
            return None
        cls = message_class(descriptor)

        def build(values: dict[str, Any]) -> Message:
            message = cls()
            for name, value in values.items():
                _assign(message, descriptor.fields_by_name[name], value)
            return message

        return st.fixed_dictionaries({field.name: hint for field, hint in hinted.items()}).map(build)

    def _generated(self, descriptor: Descriptor, depth: int) -> Strategy[Message]:
        cls = message_class(descriptor)
        singles = {
            field.name: self.field(field, descriptor, depth)
            for field in descriptor.fields
            if field.containing_oneof is None or _is_synthetic_oneof(field)
        }
        oneofs = [
            st.one_of(
                st.none(),
                *(st.tuples(st.just(f.name), self.field(f, descriptor, depth)) for f in oneof.fields),
            )
            for oneof in descriptor.oneofs
            if not _is_synthetic_oneof(oneof.fields[0])
        ]

        def build(values: tuple[dict[str, Any], list[tuple[str, Any] | None]]) -> Message:
            fields, chosen = values
            message = cls()
            for name, value in fields.items():
                _assign(message, descriptor.fields_by_name[name], value)
            for member in chosen:
                if member is not None:
                    _assign(message, descriptor.fields_by_name[member[0]], member[1])
            return message

        return st.tuples(st.fixed_dictionaries(singles), st.tuples(*oneofs).map(list)).map(build)

    def _one_field_off(
        self, descriptor: Descriptor, valid: Strategy[Message], depth: int
    ) -> Strategy[Message]:
        """A valid message (from the hints) with one field replaced by a generated value (or cleared)."""
        if not descriptor.fields:
            return valid

        @st.composite
        def draw(data: st.DrawFn) -> Message:
            message = data(valid)
            changed = type(message)()
            changed.CopyFrom(message)
            field = data(st.sampled_from(list(descriptor.fields)))
            changed.ClearField(field.name)
            _assign(changed, field, data(self.field(field, descriptor, depth, with_hint=False)))
            return changed

        return draw()

    # --- fields -------------------------------------------------------------------------------------------

    def field(
        self, field: FieldDescriptor, parent: Descriptor, depth: int = 0, *, with_hint: bool = True
    ) -> Strategy[Any]:
        """Values of one field of `parent`: a list for a repeated field, a dict for a map, None when unset."""
        rules = field_rules(field)
        if _is_map(field):
            return self._map(field, parent, depth, rules)
        if field.is_repeated:
            return self._repeated(field, parent, depth, rules)
        value = self._value(field, parent, depth, rules)
        hint = self._hints.get(field.name) if with_hint else None
        if hint is not None:
            value = weighted((3, hint), (1, value))
        if field.message_type is not None or field.has_presence:
            # Absent: for a message, not set; for `optional` scalars, no presence.
            value = st.one_of(st.none(), value)
        if rules is not None and _set(rules, "required") and rules.required:
            # The required rule's own edge: the field left out.
            value = st.one_of(st.none(), value)
        return value

    def _repeated(
        self, field: FieldDescriptor, parent: Descriptor, depth: int, rules: Rules | None
    ) -> Strategy[list[Any]]:
        kind = _kind(rules)
        items_rules = kind.items if kind is not None and _set(kind, "items") else None
        item = self._value(field, parent, depth, items_rules)
        hint = self._hints.get(field.name)
        if hint is not None:
            item = weighted((3, hint), (1, item))
        low = kind.min_items if kind is not None and _set(kind, "min_items") else None
        high = kind.max_items if kind is not None and _set(kind, "max_items") else None
        return _sized_lists(
            item, low, high, unique=bool(kind is not None and _set(kind, "unique") and kind.unique)
        )

    def _map(
        self, field: FieldDescriptor, parent: Descriptor, depth: int, rules: Rules | None
    ) -> Strategy[dict[Any, Any]]:
        entry = field.message_type
        assert entry is not None  # a map field is a repeated entry message
        kind = _kind(rules)
        key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
        keys = self._value(
            key_field, entry, depth, kind.keys if kind is not None and _set(kind, "keys") else None
        )
        values = self._value(
            value_field, entry, depth, kind.values if kind is not None and _set(kind, "values") else None
        )
        low = kind.min_pairs if kind is not None and _set(kind, "min_pairs") else None
        high = kind.max_pairs if kind is not None and _set(kind, "max_pairs") else None
        sizes = _sizes(low, high)
        return sizes.flatmap(lambda n: st.dictionaries(keys, values, min_size=n, max_size=n))

    def _value(
        self, field: FieldDescriptor, parent: Descriptor, depth: int, rules: Rules | None
    ) -> Strategy[Any]:
        """One value of the field's type (one item of a repeated field)."""
        kind = _kind(rules)
        if field.message_type is not None:
            name = field.message_type.full_name
            if name == TIMESTAMP:
                return self._timestamp(kind)
            if name == DURATION:
                return self._duration(kind)
            if name == FIELD_MASK:
                return self._field_mask(parent)
            if depth >= self._max_depth:
                return st.just(message_class(field.message_type)())
            return self.message(field.message_type, depth + 1)
        if field.enum_type is not None:
            return _enums(field.enum_type, kind)
        if field.type == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return _floats(field.type == FieldDescriptor.TYPE_FLOAT, kind)
        if field.type == FieldDescriptor.TYPE_STRING:
            return _strings(kind)
        if field.type == FieldDescriptor.TYPE_BYTES:
            return _bytes(kind)
        return _integers(_RANGES[field.type], kind)

    # --- well-known types ---------------------------------------------------------------------------------

    def _timestamp(self, kind: Rules | None) -> Strategy[Message]:
        from google.protobuf.timestamp_pb2 import Timestamp

        seconds = st.one_of(
            st.sampled_from(
                [
                    0,
                    TIMESTAMP_MIN_SECONDS,
                    TIMESTAMP_MAX_SECONDS,
                    TIMESTAMP_MIN_SECONDS - 1,
                    TIMESTAMP_MAX_SECONDS + 1,
                    INT64[0],
                    INT64[1],
                ]
            ),
            st.integers(TIMESTAMP_MIN_SECONDS, TIMESTAMP_MAX_SECONDS),
            self._near_now(),
        )
        bounds = _timestamp_bounds(kind)
        if bounds:
            seconds = st.one_of(seconds, st.sampled_from(bounds))
        if kind is not None and (_set(kind, "lt_now") or _set(kind, "gt_now") or _set(kind, "within")):
            seconds = st.one_of(seconds, self._near_now())
        return st.builds(Timestamp, seconds=seconds, nanos=_nanos())

    def _duration(self, kind: Rules | None) -> Strategy[Message]:
        from google.protobuf.duration_pb2 import Duration

        edges = [0, 1, -1, 60, 3_600, DURATION_MAX_SECONDS, -DURATION_MAX_SECONDS]
        edges += [DURATION_MAX_SECONDS + 1, -DURATION_MAX_SECONDS - 1, INT64[0], INT64[1]]
        seconds = st.one_of(st.sampled_from(edges), st.integers(-DURATION_MAX_SECONDS, DURATION_MAX_SECONDS))
        bounds = _timestamp_bounds(kind)
        if bounds:
            seconds = st.one_of(seconds, st.sampled_from(bounds))
        # nanos with the other sign than seconds is out of range too
        return st.builds(Duration, seconds=seconds, nanos=st.one_of(_nanos(), st.integers(-NANOS_MAX - 1, 0)))

    def _near_now(self) -> Strategy[int]:
        return st.sampled_from(NOW_OFFSETS).map(lambda offset: int(self._now()) + offset)

    def _field_mask(self, parent: Descriptor) -> Strategy[Message]:
        from google.protobuf.field_mask_pb2 import FieldMask

        # The paths a mask in this message could name: the fields of its message-typed siblings.
        names = sorted(
            {
                f.name
                for sibling in parent.fields
                if sibling.message_type is not None
                for f in sibling.message_type.fields
            }
            | {"", "id", "a.b", "*", "version"}
        )
        paths = st.one_of(st.sampled_from(names), st.text(TEXT, max_size=30))
        return st.builds(FieldMask, paths=st.lists(paths, max_size=8))


def weighted(*choices: tuple[int, Strategy[Any]]) -> Strategy[Any]:
    """One of the strategies, each drawn `weight` times as often (st.one_of draws its branches alike)."""
    branches = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(range(len(branches))).flatmap(lambda index: branches[index])


# --- scalar strategies ------------------------------------------------------------------------------------


def _integers(type_range: tuple[int, int], kind: Rules | None) -> Strategy[int]:
    low, high = type_range
    edges = sorted(
        v for v in {0, 1, -1, low, high, INT32[0], INT32[1], 100, 101, 1000, 1001} if low <= v <= high
    )
    values = st.one_of(st.sampled_from(edges), st.integers(low, high))
    if kind is None:
        return values
    inside_low, inside_high = low, high
    if _set(kind, "gt"):
        inside_low = kind.gt + 1
    if _set(kind, "gte"):
        inside_low = kind.gte
    if _set(kind, "lt"):
        inside_high = kind.lt - 1
    if _set(kind, "lte"):
        inside_high = kind.lte
    edges_of_rule = {inside_low - 1, inside_low, inside_high, inside_high + 1}
    if _set(kind, "const"):
        edges_of_rule |= {kind.const - 1, kind.const, kind.const + 1}
    for name in ("in", "not_in"):
        if _set(kind, name):
            edges_of_rule |= set(getattr(kind, name))
    clipped = sorted(v for v in edges_of_rule if low <= v <= high)
    strategies = [st.sampled_from(clipped), values]
    if inside_low <= inside_high:
        strategies.append(st.integers(inside_low, inside_high))
    return st.one_of(*strategies)


def _floats(single: bool, kind: Rules | None) -> Strategy[float]:
    width: Literal[32, 64] = 32 if single else 64
    values: Strategy[float] = st.one_of(
        st.sampled_from([0.0, -0.0, 1.0, -1.0, float("nan"), float("inf"), float("-inf")]),
        st.floats(width=width, allow_nan=True, allow_infinity=True),
    )
    if kind is None:
        return values
    edges = [float(getattr(kind, name)) for name in ("gt", "gte", "lt", "lte", "const") if _set(kind, name)]
    if edges:
        return st.one_of(
            values, st.sampled_from(edges), st.sampled_from(edges).map(lambda e: e * (1 + 1e-6) + 1e-6)
        )
    return values


def _enums(enum: EnumDescriptor, kind: Rules | None) -> Strategy[int]:
    defined = sorted(v.number for v in enum.values)
    undefined = sorted({max(defined) + 1, max(defined) + 100, -1, INT32[0], INT32[1]} - set(defined))
    choices = [st.sampled_from(defined), st.sampled_from(undefined)]
    if kind is not None:
        listed = [n for name in ("in", "not_in") if _set(kind, name) for n in getattr(kind, name)]
        if _set(kind, "const"):
            listed.append(kind.const)
        if listed:
            choices.append(st.sampled_from(sorted(set(listed))))
    return st.one_of(*choices)


def _strings(kind: Rules | None) -> Strategy[str]:
    values: list[Strategy[str]] = [
        st.text(TEXT, max_size=24),
        st.sampled_from(HOSTILE_STRINGS),
        st.sampled_from(EDGE_LENGTHS).map(lambda n: "x" * n),
        st.text(TEXT, max_size=24).map(lambda s: s + "\x00"),
    ]
    if kind is None:
        return st.one_of(*values)
    low = kind.min_len if _set(kind, "min_len") else None
    high = kind.max_len if _set(kind, "max_len") else None
    if _set(kind, "len"):
        low = high = kind.len
    values += [st.sampled_from(_length_edges(low, high)).map(lambda n: "x" * n)]
    if high is not None:
        # Multi-byte characters: at the limit in characters, past it in bytes.
        values.append(st.just("ǅ" * high))
    low_bytes = kind.min_bytes if _set(kind, "min_bytes") else None
    high_bytes = kind.max_bytes if _set(kind, "max_bytes") else None
    if low_bytes is not None or high_bytes is not None:
        values.append(st.sampled_from(_length_edges(low_bytes, high_bytes)).map(lambda n: "x" * n))
    if _set(kind, "pattern"):
        values.append(_matching(kind.pattern, low, high))
    for name in ("in", "not_in"):
        if _set(kind, name):
            values.append(st.sampled_from(list(getattr(kind, name))))
    if _set(kind, "const"):
        values.append(st.just(kind.const))
    if _set(kind, "prefix"):
        values.append(st.text(TEXT, max_size=10).map(functools.partial(_join, kind.prefix, "")))
    for affix in ("suffix", "contains"):
        if _set(kind, affix):
            values.append(st.text(TEXT, max_size=10).map(functools.partial(_join, "", getattr(kind, affix))))
    well_known = kind.WhichOneof("well_known") if "well_known" in kind.DESCRIPTOR.oneofs_by_name else None
    if well_known is not None:
        values.append(_well_known(well_known))
    return st.one_of(*values)


def _join(prefix: str, suffix: str, text: str) -> str:
    return prefix + text + suffix


def _matching(pattern: str, low: int | None, high: int | None) -> Strategy[str]:
    """Strings that match the declared pattern, kept to its lengths when it has any."""
    try:
        matching = st.from_regex(re.compile(pattern), fullmatch=True, alphabet=TEXT)
    except Exception:  # a RE2 pattern Python's re cannot read: the other values still test the field
        return st.nothing()
    return matching.filter(lambda s: (low is None or len(s) >= low) and (high is None or len(s) <= high))


def _well_known(name: str) -> Strategy[str]:
    examples = {
        "uuid": st.uuids().map(str),
        "tuuid": st.uuids().map(lambda u: u.hex),
        "email": st.emails(),
        "hostname": st.just("example.com"),
        "uri": st.just("https://example.com/a.png"),
        "uri_ref": st.just("/a.png"),
        "ip": st.ip_addresses().map(str),
        "ipv4": st.ip_addresses(v=4).map(str),
        "ipv6": st.ip_addresses(v=6).map(str),
    }
    return examples.get(name, st.nothing())


def _bytes(kind: Rules | None) -> Strategy[bytes]:
    values: list[Strategy[bytes]] = [
        st.binary(max_size=32),
        st.sampled_from(EDGE_LENGTHS).map(lambda n: b"\xff" * n),
    ]
    if kind is not None:
        low = kind.min_len if _set(kind, "min_len") else None
        high = kind.max_len if _set(kind, "max_len") else None
        if _set(kind, "len"):
            low = high = kind.len
        values.append(st.sampled_from(_length_edges(low, high)).map(lambda n: b"\x00" * n))
    return st.one_of(*values)


def _nanos() -> Strategy[int]:
    return st.one_of(
        st.sampled_from([0, 1, NANOS_MAX, -1, NANOS_MAX + 1, INT32[0], INT32[1]]), st.integers(0, NANOS_MAX)
    )


def _timestamp_bounds(kind: Rules | None) -> list[int]:
    """Seconds at and one past each declared bound (Timestamp or Duration rules)."""
    if kind is None:
        return []
    bounds = []
    for name in ("lt", "lte", "gt", "gte", "const"):
        if _set(kind, name):
            seconds = getattr(kind, name).seconds
            bounds += [seconds - 1, seconds, seconds + 1]
    return bounds


def _length_edges(low: int | None, high: int | None) -> list[int]:
    edges = set()
    if low is not None:
        edges |= {low, max(low - 1, 0)}
    if high is not None:
        edges |= {high, high + 1}
    return sorted(edges) or [0]


def _sizes(low: int | None, high: int | None) -> Strategy[int]:
    edges = _length_edges(low, high) if low is not None or high is not None else []
    usual = st.integers(0, 4)
    return st.one_of(usual, st.sampled_from(edges)) if edges else usual


def _sized_lists(
    item: Strategy[Any], low: int | None, high: int | None, *, unique: bool
) -> Strategy[list[Any]]:
    lists = _sizes(low, high).flatmap(lambda n: st.lists(item, min_size=n, max_size=n))
    if unique:
        # Unique items, and (just outside the rule) one repeated.
        return st.one_of(lists.map(_dedupe), lists.filter(bool).map(lambda items: [*items, items[0]]))
    return lists


def _dedupe(items: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


# --- assigning values -------------------------------------------------------------------------------------


def _is_map(field: FieldDescriptor) -> bool:
    return field.is_repeated and field.message_type is not None and field.message_type.GetOptions().map_entry


def _is_synthetic_oneof(field: FieldDescriptor) -> bool:
    """proto3 `optional` fields sit in a oneof of their own; they are plain fields with presence."""
    oneof = field.containing_oneof
    return oneof is not None and len(oneof.fields) == 1 and oneof.name == "_" + field.name


def _assign(message: Message, field: FieldDescriptor, value: Any) -> None:
    if value is None:
        return
    if _is_map(field):
        assert field.message_type is not None
        target = getattr(message, field.name)
        value_field = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            if value_field.message_type is not None:
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif field.is_repeated:
        target = getattr(message, field.name)
        if field.message_type is not None:
            for item in value:
                target.add().CopyFrom(item)
        else:
            target.extend(value)
    elif field.message_type is not None:
        getattr(message, field.name).CopyFrom(value)
    else:
        setattr(message, field.name, value)


def message_types(descriptor: Descriptor) -> Iterable[Descriptor]:
    """The message types reachable from `descriptor` (itself included), each once."""
    seen: dict[str, Descriptor] = {}
    stack = [descriptor]
    while stack:
        current = stack.pop()
        if current.full_name in seen:
            continue
        seen[current.full_name] = current
        stack.extend(f.message_type for f in current.fields if f.message_type is not None)
    return seen.values()
