"""The fuzz tier's own machinery, without servers: the descriptor-driven strategies reach the edges they
promise, the raw mutations are what they say, and answers are judged by docs/contracts.md."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from tests.fuzz.mutations import (
    SGROUP,
    UNUSED_FIELD,
    VARINT,
    deep_nesting,
    invalid_utf8,
    long_lists,
    tag,
    varint,
)
from tests.fuzz.outcomes import CONTRACTS, Call, Histogram, documented_codes
from tests.fuzz.strategies import (
    TIMESTAMP_MAX_SECONDS,
    RequestStrategies,
    field_rules,
    message_class,
    message_types,
)
from whatlead.common.v1 import common_pb2
from whatlead.executor.v1 import executor_pb2
from whatlead.gate.v1 import gate_pb2
from whatlead.ops.v1 import ops_pb2
from whatlead.reputation.v1 import reputation_pb2

SERVED = {"gate": gate_pb2, "executor": executor_pb2, "reputation": reputation_pb2}
REQUEST_TYPES = [
    method.input_type
    for module in (*SERVED.values(), ops_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
QUICK = settings(max_examples=20, database=None, deadline=None, suppress_health_check=list(HealthCheck))
# Finding is enough: no shrinking of what was found.
SEARCH = settings(
    max_examples=3_000,
    database=None,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def _found(strategy: st.SearchStrategy[Any], condition: Callable[[Any], bool]) -> Any:
    return find(strategy, condition, settings=SEARCH)


@pytest.mark.parametrize("request_type", REQUEST_TYPES, ids=lambda d: d.full_name)
def test_every_request_type_of_every_contract_is_generated_and_travels(request_type: Descriptor) -> None:
    @QUICK
    @given(RequestStrategies().message(request_type))
    def travels(message: Message) -> None:
        assert message.DESCRIPTOR is request_type
        body = message.SerializeToString(deterministic=True)
        assert type(message).FromString(body).SerializeToString(deterministic=True) == body

    travels()


def test_enums_get_numbers_the_contract_does_not_define() -> None:
    defined = {v.number for v in executor_pb2.JobStatus.DESCRIPTOR.values}
    request = RequestStrategies().message(executor_pb2.ListJobsRequest.DESCRIPTOR)
    assert _found(request, lambda m: m.status not in defined).status not in defined


@pytest.mark.parametrize(
    "condition",
    [
        lambda ts: ts.seconds > TIMESTAMP_MAX_SECONDS,  # past 9999-12-31
        lambda ts: ts.nanos < 0,
        lambda ts: ts.nanos > 999_999_999,
    ],
    ids=["after year 9999", "negative nanos", "nanos past a second"],
)
def test_timestamps_go_just_past_their_valid_range(condition: Callable[[Any], bool]) -> None:
    request = gate_pb2.SubmitIntentRequest
    strategy = RequestStrategies().field(_field(request, "expires_at"), _d(request))
    assert condition(_found(strategy, lambda ts: ts is not None and condition(ts)))


def test_strings_carry_nul_and_lengths_past_the_columns() -> None:
    strategy = RequestStrategies().field(
        _field(gate_pb2.GetIntentRequest, "organization_id"), _d(gate_pb2.GetIntentRequest)
    )
    assert "\x00" in _found(strategy, lambda s: isinstance(s, str) and "\x00" in s)
    assert len(_found(strategy, lambda s: isinstance(s, str) and len(s) == 65)) == 65


def _rule_fields(kind: str, rule: str) -> list[tuple[Descriptor, FieldDescriptor]]:
    """Every field of every request (nested messages included) whose rules set `kind.rule`."""
    found = []
    for request_type in REQUEST_TYPES:
        for descriptor in message_types(request_type):
            for field in descriptor.fields:
                rules = field_rules(field)
                if rules is None:
                    continue
                if (
                    kind == "repeated"
                    and rules.WhichOneof("type") == "repeated"
                    and rules.repeated.HasField(rule)
                ) or (rules.WhichOneof("type") == kind and getattr(rules, kind).HasField(rule)):
                    found.append((descriptor, field))
    return list({(d.full_name, f.name): (d, f) for d, f in found}.values())


MAX_LEN = _rule_fields("string", "max_len")
LTE = _rule_fields("int32", "lte")
MAX_ITEMS = _rule_fields("repeated", "max_items")


def _rules(field: FieldDescriptor) -> Any:
    rules = field_rules(field)
    assert rules is not None
    return rules


def _string_of_length(length: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and len(value) == length


def _list_of_length(length: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, list) and len(value) == length


@pytest.mark.skipif(not MAX_LEN, reason="the contracts declare no max_len yet")
@pytest.mark.parametrize(("parent", "field"), MAX_LEN, ids=lambda x: getattr(x, "full_name", ""))
def test_a_declared_max_len_is_met_and_passed_by_one(parent: Descriptor, field: FieldDescriptor) -> None:
    limit = _rules(field).string.max_len
    strategy = RequestStrategies().field(field, parent)
    for length in (limit, limit + 1):
        assert len(_found(strategy, _string_of_length(length))) == length


@pytest.mark.skipif(not LTE, reason="the contracts declare no int32 bound yet")
@pytest.mark.parametrize(("parent", "field"), LTE, ids=lambda x: getattr(x, "full_name", ""))
def test_a_declared_upper_bound_is_met_and_passed_by_one(parent: Descriptor, field: FieldDescriptor) -> None:
    bound = _rules(field).int32.lte
    strategy = RequestStrategies().field(field, parent)
    for value in (bound, bound + 1):
        assert _found(strategy, value.__eq__) == value


@pytest.mark.skipif(not MAX_ITEMS, reason="the contracts declare no max_items yet")
@pytest.mark.parametrize(("parent", "field"), MAX_ITEMS, ids=lambda x: getattr(x, "full_name", ""))
def test_a_declared_item_count_is_met_and_passed_by_one(parent: Descriptor, field: FieldDescriptor) -> None:
    limit = _rules(field).repeated.max_items
    strategy = RequestStrategies().field(field, parent)
    for count in (limit, limit + 1):
        assert len(_found(strategy, _list_of_length(count))) == count


def test_a_hinted_message_is_also_sent_with_exactly_one_field_changed() -> None:
    valid = gate_pb2.GetIntentRequest(
        organization_id="org-1", intent_id="01a2322b-1e37-700f-beb6-62db9100efec"
    )
    strategy = RequestStrategies({gate_pb2.GetIntentRequest.DESCRIPTOR.full_name: st.just(valid)}).message(
        gate_pb2.GetIntentRequest.DESCRIPTOR
    )

    def one_field_off(message: Any) -> bool:
        return (message.organization_id == valid.organization_id) != (message.intent_id == valid.intent_id)

    assert one_field_off(_found(strategy, one_field_off))


# --- raw bodies -------------------------------------------------------------------------------------------


def test_varints_are_encoded_as_protobuf_reads_them() -> None:
    assert varint(300) == b"\xac\x02"
    for value in (0, 1, 500, -5, 2**31 - 1, -(2**31)):
        assert gate_pb2.ListIntentsRequest.FromString(tag(2, VARINT) + varint(value)).page_size == value


@QUICK
@given(st.data())
def test_invalid_utf8_in_a_string_field_never_decodes(data: st.DataObject) -> None:
    request_type = data.draw(st.sampled_from(REQUEST_TYPES))
    valid = RequestStrategies().message(request_type).map(lambda m: m.SerializeToString())
    body = data.draw(invalid_utf8(request_type, valid))
    with pytest.raises(DecodeError):
        _parse(request_type, body)


@QUICK
@given(st.data())
def test_deep_nesting_goes_past_the_parsers_recursion_limit(data: st.DataObject) -> None:
    descriptor = gate_pb2.SubmitIntentRequest.DESCRIPTOR
    body = data.draw(deep_nesting(descriptor))
    depth = body.count(tag(UNUSED_FIELD, SGROUP)) + sum(
        body.count(tag(f.number, SGROUP)) for f in descriptor.fields
    )
    assert depth >= 64


def test_long_lists_put_a_thousand_items_in_each_list_nested_ones_too() -> None:
    first, second = long_lists(reputation_pb2.UpdateInstanceRequest.DESCRIPTOR)
    assert len(reputation_pb2.UpdateInstanceRequest.FromString(first).instance.purposes) == 1_000
    assert len(reputation_pb2.UpdateInstanceRequest.FromString(second).update_mask.paths) == 1_000


def _parse(request_type: Descriptor, body: bytes) -> Message:
    return message_class(request_type).FromString(body)


# --- judging the answers ----------------------------------------------------------------------------------


def test_every_served_rpc_has_its_status_codes_documented() -> None:
    table = documented_codes(CONTRACTS.read_text())
    served = {
        (context, method.name)
        for context, module in SERVED.items()
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert served - table.keys() == set()


def _call(rpc: str = "DecideIntent", limit: int = 1024) -> Call:
    return Call("gate", rpc, "message", gate_pb2.DecideIntentRequest.DESCRIPTOR, limit)


@pytest.mark.parametrize(
    ("call", "code", "details", "size", "kept"),
    [
        (_call(), grpc.StatusCode.OK, "", 10, True),
        (_call(), grpc.StatusCode.FAILED_PRECONDITION, "intent is SENT", 10, True),
        (_call("GetIntent"), grpc.StatusCode.FAILED_PRECONDITION, "intent is SENT", 10, False),
        (_call(), grpc.StatusCode.UNKNOWN, "", 10, False),
        (_call(), grpc.StatusCode.INTERNAL, "internal error", 10, False),
        (_call(), grpc.StatusCode.INVALID_ARGUMENT, "Unexpected <class 'DecodeError'>", 10, False),
        (_call(), grpc.StatusCode.INVALID_ARGUMENT, "OverflowError: date value out of range", 10, False),
        (_call(limit=1024), grpc.StatusCode.RESOURCE_EXHAUSTED, "", 1025, True),
        (_call(limit=1024), grpc.StatusCode.INVALID_ARGUMENT, "", 1025, False),
        (_call(limit=1024), grpc.StatusCode.RESOURCE_EXHAUSTED, "", 1024, False),
    ],
)
def test_an_answer_keeps_the_contract_only_with_a_documented_code_and_no_internals(
    call: Call, code: grpc.StatusCode, details: str, size: int, kept: bool
) -> None:
    histogram = Histogram()
    histogram.record(call, code, details, b"\x00" * size)
    assert (histogram.failures_of("gate", {"message"}) == []) is kept
    assert histogram.codes[("gate", call.rpc, code.name)] == 1


def _d(message: type[Message]) -> Any:
    return message.DESCRIPTOR


def _field(message: type[Message], name: str) -> Any:
    return message.DESCRIPTOR.fields_by_name[name]


def _has_member(name: str, payload: Any) -> bool:
    return bool(payload.WhichOneof("content") == name)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # a found payload may be 70 kB of text
def test_the_payload_oneof_gets_one_member_or_none() -> None:
    strategy = RequestStrategies().message(common_pb2.MessagePayload.DESCRIPTOR)
    members = [f.name for f in common_pb2.MessagePayload.DESCRIPTOR.oneofs_by_name["content"].fields]
    for member in members:
        assert _found(strategy, functools.partial(_has_member, member))
    assert _found(strategy, lambda m: m.WhichOneof("content") is None) is not None
