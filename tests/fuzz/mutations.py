"""Raw request bodies no well-behaved client sends: what reaches a server from a broken or hostile one.

Each strategy draws bytes for one request type (its Descriptor says which field numbers and wire types
mean something): random bytes, a valid message cut short, a valid message with bits flipped, groups nested
far past any parser's recursion limit, varints that are huge or longer than ten bytes (and lengths that
promise more than follows), and invalid UTF-8 in a string field, at the top or inside a nested message.
`long_lists` gives fixed bodies too: each repeated field with a thousand items that each break a rule.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
MAX_FIELD_NUMBER = 2**29 - 1
UNUSED_FIELD = 9_999  # no request declares it: an unknown field, which parsers must skip (or refuse)

INVALID_UTF8 = (
    b"\xff",
    b"\xc3\x28",  # a lead byte without its continuation
    b"\xa0\xa1",  # continuation bytes alone
    b"\xc0\xaf",  # overlong "/"
    b"\xed\xa0\x80",  # a UTF-16 surrogate, encoded
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"org\x80",
    b"\xf0\x9f\x98",  # an emoji cut short
)


def varint(value: int) -> bytes:
    value &= 2**64 - 1  # negative numbers travel as their 64-bit two's complement, ten bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    return tag(number, LEN) + varint(len(payload)) + payload


def raw_bodies(descriptor: Descriptor, valid: st.SearchStrategy[Message]) -> st.SearchStrategy[bytes]:
    """Every kind of malformed body for `descriptor`; `valid` draws well-formed messages to damage."""
    serialized = valid.map(lambda m: m.SerializeToString()).filter(bool)
    return st.one_of(
        st.binary(max_size=256),
        truncated(serialized),
        bit_flipped(serialized),
        deep_nesting(descriptor),
        huge_varints(descriptor),
        invalid_utf8(descriptor, serialized),
    )


def truncated(serialized: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.tuples(serialized, st.integers(min_value=1)).map(lambda pair: pair[0][: pair[1] % len(pair[0])])


@st.composite
def bit_flipped(draw: st.DrawFn, serialized: st.SearchStrategy[bytes]) -> bytes:
    body = bytearray(draw(serialized))
    for bit in draw(st.lists(st.integers(0, len(body) * 8 - 1), min_size=1, max_size=8)):
        body[bit // 8] ^= 1 << (bit % 8)
    return bytes(body)


@st.composite
def deep_nesting(draw: st.DrawFn, descriptor: Descriptor) -> bytes:
    """Groups inside groups, under an unknown field or inside the request's own nested messages."""
    depth = draw(st.sampled_from([64, 100, 101, 1_000, 100_000]))
    number = draw(st.sampled_from([UNUSED_FIELD, *(f.number for f in descriptor.fields)]))
    body = tag(number, SGROUP) * depth + tag(number, EGROUP) * draw(st.sampled_from([depth, depth - 1, 0]))
    # The same inside a message-typed field: length-delimited messages wrapping the groups.
    path = draw(st.sampled_from([[], *_message_paths(descriptor)]))
    for field in reversed(path):
        body = length_delimited(field.number, body)
    return body


@st.composite
def huge_varints(draw: st.DrawFn, descriptor: Descriptor) -> bytes:
    numbers = [f.number for f in descriptor.fields] or [1]
    number = draw(st.sampled_from(numbers))
    choice = draw(st.integers(0, 4))
    if choice == 0:  # the largest ten-byte varints: 2^64-1, 2^63, -1 as int32
        return tag(number, VARINT) + varint(draw(st.sampled_from([2**64 - 1, 2**63, 2**63 - 1, 2**32, -1])))
    if choice == 1:  # longer than ten bytes: no valid varint is
        return tag(number, VARINT) + b"\xff" * draw(st.integers(10, 64)) + b"\x01"
    if choice == 2:  # a length that promises far more than follows
        return tag(number, LEN) + varint(draw(st.sampled_from([2**31, 2**32 + 5, 2**63, 2**64 - 1]))) + b"abc"
    if choice == 3:  # a tag past the largest field number, or field number 0
        bad = draw(st.sampled_from([MAX_FIELD_NUMBER + 1, 2**32, 2**61, 0]))
        return varint((bad << 3) | VARINT) + varint(1)
    return tag(number, VARINT) + b"\x80" * draw(st.integers(1, 9))  # a varint cut before its last byte


@st.composite
def invalid_utf8(draw: st.DrawFn, descriptor: Descriptor, serialized: st.SearchStrategy[bytes]) -> bytes:
    """Invalid UTF-8 in one string field (maybe nested), alone or after a valid message (last one wins)."""
    paths = list(_string_paths(descriptor))
    if not paths:
        return draw(st.sampled_from(INVALID_UTF8))
    path = draw(st.sampled_from(paths))
    body = draw(st.sampled_from(INVALID_UTF8))
    for field in reversed(path):
        body = length_delimited(field.number, body)
    prefix = draw(st.one_of(st.just(b""), serialized))
    return prefix + body


def long_lists(descriptor: Descriptor, items: int = 1_000) -> list[bytes]:
    """For each repeated field of the request, a body with `items` entries in it, each one breaking its
    rules where it has any (an undefined enum number, a negative or huge number, an empty string): a
    request that breaks one rule per item, far past any `max_items`, yet a few KiB long."""
    bodies = []
    nested = [[*p, f] for p in _message_paths(descriptor) for f in _fields_of(p[-1])]
    for path in [[f] for f in descriptor.fields] + nested:
        *outer, field = path
        if not field.is_repeated or any(f.is_repeated for f in outer):
            continue
        if field.cpp_type in _VARINT_TYPES:
            body = length_delimited(field.number, varint(2**31 - 1) * items)  # packed
        else:
            body = length_delimited(field.number, b"") * items
        for enclosing in reversed(outer):
            body = length_delimited(enclosing.number, body)
        bodies.append(body)
    return bodies


_VARINT_TYPES = {
    FieldDescriptor.CPPTYPE_ENUM,
    FieldDescriptor.CPPTYPE_INT32,
    FieldDescriptor.CPPTYPE_INT64,
    FieldDescriptor.CPPTYPE_UINT32,
    FieldDescriptor.CPPTYPE_UINT64,
    FieldDescriptor.CPPTYPE_BOOL,
}


def _fields_of(field: FieldDescriptor) -> list[FieldDescriptor]:
    return list(field.message_type.fields) if field.message_type is not None else []


def _message_paths(descriptor: Descriptor, depth: int = 3) -> list[list[FieldDescriptor]]:
    paths: list[list[FieldDescriptor]] = []
    if depth == 0:
        return paths
    for field in descriptor.fields:
        if field.message_type is not None:
            paths.append([field])
            paths += [[field, *rest] for rest in _message_paths(field.message_type, depth - 1)]
    return paths


def _string_paths(descriptor: Descriptor, depth: int = 3) -> list[list[FieldDescriptor]]:
    paths = [[f] for f in descriptor.fields if f.type == FieldDescriptor.TYPE_STRING]
    if depth > 1:
        for field in descriptor.fields:
            if field.message_type is not None:
                paths += [[field, *rest] for rest in _string_paths(field.message_type, depth - 1)]
    return paths
