"""gRPC with tracing on, through the server wrapper and the channels every service opens: a unary call is
a client span and, in the server, its child; errors keep their mapping; server streams are not wrapped
(the library's wrapper would break a stream that writes with `context.write`) and still stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from libs.rpc.auth import Authenticator
from libs.rpc.client import open_channel
from libs.rpc.keys import KeyTable
from libs.rpc.server import GrpcServer, ServicerBinding
from libs.seedwork.access import Role
from libs.testing.services import install_key
from tests.libs.rpc.test_error_model import ERRORS, add_errors_service, as_generated, failure
from tests.libs.rpc.test_streaming_guard import TOKEN, WatchingOps, add_watching_ops, read_all
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

SUBMIT = "/whatlead.gate.v1.GateService/SubmitIntent"


@pytest.fixture
async def address(spans: InMemorySpanExporter) -> AsyncIterator[str]:
    """A server built with tracing on (its interceptors are chosen when it is built): the generated Gate
    servicer (every method UNIMPLEMENTED), the error model's raw service (no descriptor), and an ops
    service whose WatchIntents writes two changes."""
    keys = KeyTable()
    bindings: list[ServicerBinding[Any]] = [
        ServicerBinding(object(), add_errors_service, ERRORS),
        ServicerBinding(
            as_generated(gate_pb2_grpc.GateServiceServicer),
            gate_pb2_grpc.add_GateServiceServicer_to_server,
            "whatlead.gate.v1.GateService",
        ),
        ServicerBinding(WatchingOps(), add_watching_ops, "whatlead.ops.v1.OpsService"),
    ]
    server = GrpcServer(bindings, host="127.0.0.1", port=0, authenticator=Authenticator(keys, TOKEN))
    port = await server.start()
    KEYS[0] = keys
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


KEYS: list[KeyTable] = [KeyTable()]


async def test_a_unary_call_is_a_client_span_and_its_server_span_a_child_with_its_error_mapped(
    spans: InMemorySpanExporter, address: str
) -> None:
    # The channel every service opens, with the service credential: the client's span is in it.
    channel = open_channel(address, credential=TOKEN)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await gate_pb2_grpc.GateServiceStub(channel).SubmitIntent(gate_pb2.SubmitIntentRequest())
    finally:
        await channel.close()

    # The wrapper still authenticates (the service credential) and refuses an empty request.
    assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    [client] = [s for s in spans.get_finished_spans() if s.name == SUBMIT and s.kind is SpanKind.CLIENT]
    [server] = [s for s in spans.get_finished_spans() if s.name == SUBMIT and s.kind is SpanKind.SERVER]
    assert server.parent is not None and server.parent.span_id == client.context.span_id
    # Its code on the span; a caller's mistake is no server error (UNSET, as the conventions say).
    assert dict(server.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert server.status.status_code is StatusCode.UNSET


async def test_a_service_without_a_descriptor_is_served_untraced(
    spans: InMemorySpanExporter, address: str
) -> None:
    channel = open_channel(address, credential=TOKEN)
    try:
        error = await failure(channel, "Bug")
    finally:
        await channel.close()

    assert error.code() is grpc.StatusCode.PERMISSION_DENIED  # guarded as ever: no access option, nobody
    assert [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER] == []


async def test_a_server_stream_streams_with_tracing_on_and_is_not_a_span(
    spans: InMemorySpanExporter, address: str
) -> None:
    secret = install_key(KEYS[0], "org-a", Role.MEMBER)
    channel = open_channel(address, credential=secret)
    try:
        call = ops_pb2_grpc.OpsServiceStub(channel).WatchIntents(ops_pb2.WatchIntentsRequest())
        positions, code, _ = await read_all(call)
    finally:
        await channel.close()

    assert (positions, code) == (["1", "2"], grpc.StatusCode.OK)
    assert spans.get_finished_spans() == ()
