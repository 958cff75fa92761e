"""The shared interceptor refuses requests that break their contract before the servicer sees them: over a
real grpc.aio server on loopback, with a servicer that only records what reached it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY

from libs.rpc import validation
from libs.rpc.convert import from_timestamp, to_timestamp
from libs.rpc.errors import MAX_REPORTED_VIOLATIONS, field_violations
from libs.rpc.server import GrpcServer, ServicerBinding
from libs.rpc.validation import request_violations
from libs.seedwork.errors import FieldViolation, InvalidArgument
from libs.seedwork.ids import new_id
from whatlead.common.v1 import common_pb2
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc
from whatlead.reputation.v1 import reputation_pb2

SUBMIT = "/whatlead.gate.v1.GateService/SubmitIntent"


class RecordingGate(gate_pb2_grpc.GateServiceServicer):
    """Answers every valid SubmitIntent with an empty response and keeps what reached it."""

    def __init__(self) -> None:
        self.received: list[gate_pb2.SubmitIntentRequest] = []

    async def SubmitIntent(self, request, context):
        self.received.append(request)
        return gate_pb2.SubmitIntentResponse()

    async def CreateIntent(self, request, context):
        raise NotImplementedError

    async def DecideIntent(self, request, context):
        raise NotImplementedError

    async def GetIntent(self, request, context):
        raise NotImplementedError

    async def ListIntents(self, request, context):
        raise NotImplementedError


@pytest.fixture
async def served():
    servicer = RecordingGate()
    binding = ServicerBinding(
        servicer, gate_pb2_grpc.add_GateServiceServicer_to_server, "whatlead.gate.v1.GateService"
    )
    server = GrpcServer(
        [binding], host="127.0.0.1", port=0, max_receive_message_bytes=8 * 1024, authenticator=None
    )
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield servicer, channel
    finally:
        await channel.close()
        await server.stop(0)


def valid_request(**fields) -> gate_pb2.SubmitIntentRequest:
    valid = {
        "organization_id": "org-1",
        "target": common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value="5511999998888"),
        "type": common_pb2.MESSAGE_TYPE_TEXT,
        "purpose": common_pb2.PURPOSE_DISPATCH,
        "payload": common_pb2.MessagePayload(text=common_pb2.TextPayload(text="hello")),
    }
    return gate_pb2.SubmitIntentRequest(**{**valid, **fields})


async def call_raw(channel: grpc.aio.Channel, body: bytes) -> grpc.aio.AioRpcError | None:
    send: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        SUBMIT, request_serializer=None, response_deserializer=None
    )
    try:
        await send(body, timeout=5)
    except grpc.aio.AioRpcError as error:
        return error
    return None


def undecodable_count(method: str) -> float:
    value = REGISTRY.get_sample_value("whatlead_grpc_undecodable_requests_total", {"method": method})
    return value or 0.0


async def test_a_valid_request_reaches_the_servicer(served):
    servicer, channel = served
    assert await call_raw(channel, valid_request().SerializeToString()) is None
    assert [r.organization_id for r in servicer.received] == ["org-1"]


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xff\xff\xff",  # a varint that never ends
        b"\x0a\x05ab",  # a string longer than the body
        b"\x0a\x02\xff\xfe",  # organization_id that is not UTF-8
        b"\x0f",  # wire type 7 does not exist
    ],
)
async def test_a_body_that_does_not_decode_is_invalid_argument_with_a_plain_message(served, body, caplog):
    servicer, channel = served
    before = undecodable_count(SUBMIT)
    with caplog.at_level(logging.INFO):
        error = await call_raw(channel, body)
    assert error is not None and error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "the request is not a valid whatlead.gate.v1.SubmitIntentRequest"
    assert undecodable_count(SUBMIT) == before + 1
    assert servicer.received == []
    assert not [r for r in caplog.records if r.levelno > logging.WARNING or r.exc_info]


async def test_a_flood_of_undecodable_bodies_logs_one_warning(served, caplog, monkeypatch):
    _, channel = served
    monkeypatch.setattr(validation, "_occasional", validation._Occasional(interval_seconds=60))
    with caplog.at_level(logging.WARNING):
        for _ in range(30):
            error = await call_raw(channel, b"\xff" * 12)
            assert error is not None and error.code() is grpc.StatusCode.INVALID_ARGUMENT
    [warning] = [r for r in caplog.records if r.name == "libs.rpc.validation"]
    assert warning.levelno == logging.WARNING and not warning.exc_info
    assert "\xff" not in warning.getMessage()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"organization_id": "o" * 65}, "organization_id"),
        ({"organization_id": ""}, "organization_id"),
        ({"campaign_id": "spring\x00sale"}, "campaign_id"),
        ({"expires_at": Timestamp(seconds=253402300800, nanos=-1)}, "expires_at"),
        ({"expires_at": Timestamp(seconds=1_900_000_000, nanos=-1)}, "expires_at"),
        ({"not_before": Timestamp(seconds=-62135596801)}, "not_before"),
        ({"not_before": to_timestamp(datetime(9999, 12, 31, tzinfo=UTC))}, "not_before"),
        ({"not_before": to_timestamp(datetime.now(UTC) + timedelta(hours=73))}, "not_before"),
        ({"type": 99}, "type"),
        ({"idempotency_key": "k" * 129}, "idempotency_key"),
    ],
)
async def test_a_request_breaking_its_rules_is_invalid_argument_naming_the_field(served, fields, field):
    servicer, channel = served
    error = await call_raw(channel, valid_request(**fields).SerializeToString())
    assert error is not None and error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error)
    assert servicer.received == []


async def test_a_nul_deep_in_the_payload_is_named_by_its_path(served):
    servicer, channel = served
    request = valid_request()
    request.payload.text.text = "hi\x00there"
    error = await call_raw(channel, request.SerializeToString())
    assert error is not None and error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {"payload.text.text": "must not contain a NUL character"}
    assert servicer.received == []


async def test_a_request_over_the_size_limit_is_resource_exhausted(served):
    servicer, channel = served
    request = valid_request()
    request.payload.text.text = "x" * (9 * 1024)  # over the server's 8 KiB
    error = await call_raw(channel, request.SerializeToString())
    assert error is not None and error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert servicer.received == []


def test_every_violation_of_a_request_is_reported_at_once():
    request = valid_request(organization_id="o" * 65, expires_at=Timestamp(seconds=5, nanos=-1))
    request.target.value = "\x00"
    fields = {v.field for v in request_violations(request)}
    assert fields == {"organization_id", "expires_at", "target.value"}


def test_a_malformed_time_is_reported_once_even_where_a_rule_also_looks_at_it():
    request = valid_request(expires_at=Timestamp(seconds=253402300800, nanos=-1))
    assert [v.field for v in request_violations(request)] == ["expires_at"]


def test_malformed_times_are_found_inside_nested_and_repeated_messages():
    request = reputation_pb2.UpdateInstanceRequest(
        organization_id="org-1",
        instance_id=new_id(),
        instance=reputation_pb2.Instance(created_at=Timestamp(seconds=10, nanos=1_000_000_000)),
    )
    assert [v.field for v in request_violations(request)] == ["instance.created_at"]
    window = reputation_pb2.GetWindowStatsRequest(
        organization_id="org-1", instance_id=new_id(), window=Duration(seconds=60, nanos=-5)
    )
    assert [v.field for v in request_violations(window)] == ["window"]


def test_list_items_are_named_by_their_index():
    request = reputation_pb2.RegisterInstanceRequest(
        organization_id="org-1",
        provider=common_pb2.PROVIDER_WAHA,
        purposes=[common_pb2.PURPOSE_WARMUP, common_pb2.Purpose.ValueType(42)],
    )
    assert [v.field for v in request_violations(request)] == ["purposes[1]"]


@pytest.mark.parametrize(
    "stamp",
    [
        Timestamp(seconds=253402300800),
        Timestamp(seconds=-62135596801),
        Timestamp(seconds=5, nanos=-1),
        Timestamp(seconds=5, nanos=1_000_000_000),
        Timestamp(seconds=2**62),
    ],
)
def test_from_timestamp_refuses_what_datetime_cannot_hold_as_invalid_argument(stamp):
    with pytest.raises(InvalidArgument) as raised:
        from_timestamp(stamp, field="not_before")
    assert [v.field for v in raised.value.violations] == ["not_before"]


def test_from_timestamp_reads_the_whole_range():
    assert from_timestamp(Timestamp(seconds=253402300799, nanos=999_999_999)) == datetime(
        9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC
    )
    assert from_timestamp(Timestamp(seconds=-62135596800)) == datetime(1, 1, 1, tzinfo=UTC)
    moment = datetime(2026, 3, 1, 12, 30, 15, 123_456, tzinfo=UTC)
    stamp = to_timestamp(moment)
    assert stamp is not None and from_timestamp(stamp) == moment


class RefusingEveryItem(RecordingGate):
    """Refuses a SubmitIntent once per item, as protovalidate does for a list of 1,000 unknown enums."""

    async def SubmitIntent(self, request, context):
        raise InvalidArgument(
            [
                FieldViolation(f"purposes[{n}]", "value must be one of the defined enum values")
                for n in range(1_000)
            ]
        )


async def test_a_thousand_violations_still_reach_the_client_as_invalid_argument():
    binding = ServicerBinding(
        RefusingEveryItem(), gate_pb2_grpc.add_GateServiceServicer_to_server, "whatlead.gate.v1.GateService"
    )
    server = GrpcServer([binding], host="127.0.0.1", port=0, authenticator=None)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        error = await call_raw(channel, valid_request().SerializeToString())
    finally:
        await channel.close()
        await server.stop(0)
    # All of them would not fit in the trailers a client accepts (16 KiB): it would get RESOURCE_EXHAUSTED.
    assert error is not None and error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(error)) == [f"purposes[{n}]" for n in range(MAX_REPORTED_VIOLATIONS)]
    assert (error.details() or "").endswith(f"and {1_000 - MAX_REPORTED_VIOLATIONS} more")
    assert sum(len(key) + len(value) for key, value in error.trailing_metadata() or ()) < 8 * 1024
