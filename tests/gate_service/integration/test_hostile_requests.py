"""Requests an attacker would send reach the Gate's gRPC port and are refused with a clear status, the field
named, before any use case runs: nothing is written, and the Gate goes on serving."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select

from gate_service.infrastructure.tables import intents, messaging
from libs.messaging.streams import delete_streams, ensure_streams
from libs.rpc.convert import to_timestamp
from libs.rpc.errors import field_violations
from libs.seedwork.ids import new_id
from tests.gate_service.integration.harness import register_instances, running_gate, text_request
from whatlead.gate.v1 import gate_pb2

SUBMIT = "/whatlead.gate.v1.GateService/SubmitIntent"
ORGANIZATION = f"org-{new_id()[-12:]}"


@pytest.fixture(scope="module")
async def gate_root(subject_root, jetstream):
    root = f"{subject_root}_hostile"
    await ensure_streams(jetstream, root)
    yield root
    await delete_streams(jetstream, root)


@pytest.fixture(scope="module")
async def gate(migrated_database, gate_root, redis_prefix, jetstream, redis_client):
    async with running_gate(migrated_database("gate_service"), gate_root, redis_prefix) as running:
        await register_instances(jetstream, gate_root, running, ORGANIZATION, 1)
        yield running


async def submit_bytes(gate, body: bytes) -> grpc.aio.AioRpcError:
    send = gate.channel.unary_unary(SUBMIT, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await send(body, timeout=10)
    return raised.value


async def rows_written(gate) -> tuple[int, int]:
    async with gate.app.infra.engine.connect() as connection:
        stored = await connection.scalar(select(func.count()).select_from(intents))
        published = await connection.scalar(select(func.count()).select_from(messaging.outbox))
    return stored, published


def request_with(**fields):
    request = text_request(ORGANIZATION, "5511988887777")
    for name, value in fields.items():
        if isinstance(value, Timestamp):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


async def test_a_body_that_does_not_decode_is_invalid_argument_and_writes_nothing(gate):
    before = await rows_written(gate)
    for body in (b"\xff\xff\xff\xff\xff", b"\x0a\x40short", b"\x12\x03\xc3\x28\x00"):
        error = await submit_bytes(gate, body)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error.details() == "the request is not a valid whatlead.gate.v1.SubmitIntentRequest"
    assert await rows_written(gate) == before


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (request_with(not_before=Timestamp(seconds=253402300800, nanos=-1)), "not_before"),
        (request_with(expires_at=Timestamp(seconds=253402300800, nanos=-1)), "expires_at"),
        (request_with(not_before=to_timestamp(datetime(9999, 12, 31, tzinfo=UTC))), "not_before"),
        (request_with(organization_id="o" * 65), "organization_id"),
        (request_with(idempotency_key="retry\x00key"), "idempotency_key"),
        (text_request(ORGANIZATION, "5511988887777", text="hello\x00world"), "payload.text.text"),
    ],
    ids=["timestamp-out-of-range", "bad-nanos", "not-before-9999", "organization-65", "nul-key", "nul-text"],
)
async def test_a_request_breaking_its_contract_is_invalid_argument_and_writes_nothing(gate, request_, field):
    before = await rows_written(gate)
    error = await submit_bytes(gate, request_.SerializeToString())
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error)
    assert await rows_written(gate) == before


async def test_an_oversized_request_is_resource_exhausted_and_writes_nothing(gate):
    before = await rows_written(gate)
    too_long = "x" * gate.settings.grpc_max_receive_bytes
    error = await submit_bytes(
        gate, text_request(ORGANIZATION, "5511988887777", text=too_long).SerializeToString()
    )
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await rows_written(gate) == before


async def test_a_valid_submit_is_still_served_and_stored(gate):
    before, _ = await rows_written(gate)
    response = await gate.stub.SubmitIntent(
        text_request(ORGANIZATION, "5511988887777", key="after-the-attack")
    )
    assert response.intent.status == gate_pb2.INTENT_STATUS_APPROVED
    stored, _ = await rows_written(gate)
    assert stored == before + 1
