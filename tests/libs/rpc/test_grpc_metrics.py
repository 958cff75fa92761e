"""gRPC's standard series (go-grpc-prometheus names and labels) as an operator reads them on /metrics: every
call counted on the server and on the client (open_channel), with the status the server mapped it to, for
unary calls and server streams alike. A real grpc.aio server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from libs.rpc.client import open_channel
from libs.rpc.server import GrpcServer, ServicerBinding
from libs.seedwork.errors import FailedPrecondition
from libs.testing.waiting import eventually
from whatlead.common.v1 import common_pb2
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

GATE = "whatlead.gate.v1.GateService"
OPS = "whatlead.ops.v1.OpsService"
INTENT = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


class Gate:
    """SubmitIntent answers; GetIntent fails with a domain error, which the interceptor maps."""

    async def submit_intent(self, request: Any, context: Any) -> gate_pb2.SubmitIntentResponse:
        return gate_pb2.SubmitIntentResponse()

    async def get_intent(self, request: Any, context: Any) -> gate_pb2.GetIntentResponse:
        raise FailedPrecondition("not now")


def add_gate(servicer: Gate, server: grpc.aio.Server) -> None:
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "SubmitIntent": grpc.unary_unary_rpc_method_handler(
            servicer.submit_intent,
            request_deserializer=gate_pb2.SubmitIntentRequest.FromString,
            response_serializer=gate_pb2.SubmitIntentResponse.SerializeToString,
        ),
        "GetIntent": grpc.unary_unary_rpc_method_handler(
            servicer.get_intent,
            request_deserializer=gate_pb2.GetIntentRequest.FromString,
            response_serializer=gate_pb2.GetIntentResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(GATE, handlers),))


class Ops:
    """WatchIntents writes one change, then waits until its client leaves."""

    def __init__(self) -> None:
        self.writing = asyncio.Event()

    async def watch_intents(self, request: Any, context: Any) -> None:
        await context.write(ops_pb2.WatchIntentsResponse(position="1"))
        self.writing.set()
        await asyncio.Event().wait()


def add_ops(servicer: Ops, server: grpc.aio.Server) -> None:
    handler = grpc.unary_stream_rpc_method_handler(
        servicer.watch_intents,
        request_deserializer=ops_pb2.WatchIntentsRequest.FromString,
        response_serializer=ops_pb2.WatchIntentsResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(OPS, {"WatchIntents": handler}),))


@pytest.fixture
async def served() -> AsyncIterator[tuple[Ops, grpc.aio.Channel]]:
    ops = Ops()
    bindings: list[ServicerBinding[Any]] = [
        ServicerBinding(Gate(), add_gate, GATE),
        ServicerBinding(ops, add_ops, OPS),
    ]
    server = GrpcServer(bindings, host="127.0.0.1", port=0, authenticator=None)
    port = await server.start()
    channel = open_channel(f"127.0.0.1:{port}")
    try:
        yield ops, channel
    finally:
        await channel.close()
        await server.stop(0)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def series(kind: str, service: str, method: str) -> dict[str, str]:
    return {"grpc_type": kind, "grpc_service": service, "grpc_method": method}


def valid_submit() -> gate_pb2.SubmitIntentRequest:
    return gate_pb2.SubmitIntentRequest(
        organization_id="org-1",
        target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value="5511999998888"),
        type=common_pb2.MESSAGE_TYPE_TEXT,
        purpose=common_pb2.PURPOSE_DISPATCH,
        payload=common_pb2.MessagePayload(text=common_pb2.TextPayload(text="hello")),
    )


async def grows(name: str, labels: dict[str, str], before: float, by: float = 1) -> None:
    """Counted when the call ended, which on the other side may be just after it heard so."""

    async def counted() -> bool:
        return sample(name, **labels) == before + by

    await eventually(counted, timeout=5)


async def test_an_invalid_request_is_counted_invalid_argument_on_both_sides(served):
    _, channel = served
    labels = series("unary", GATE, "SubmitIntent")
    invalid = {**labels, "grpc_code": "INVALID_ARGUMENT"}
    before_server = sample("grpc_server_handled_total", **invalid)
    before_client = sample("grpc_client_handled_total", **invalid)
    started = sample("grpc_server_started_total", **labels)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gate_pb2_grpc.GateServiceStub(channel).SubmitIntent(gate_pb2.SubmitIntentRequest())
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    await grows("grpc_server_handled_total", invalid, before_server)
    await grows("grpc_client_handled_total", invalid, before_client)
    assert sample("grpc_server_started_total", **labels) == started + 1


async def test_a_good_call_is_ok_with_its_messages_and_its_handling_time(served):
    _, channel = served
    labels = series("unary", GATE, "SubmitIntent")
    ok = {**labels, "grpc_code": "OK"}
    before = {
        name: sample(name, **labels)
        for name in (
            "grpc_server_msg_received_total",
            "grpc_server_msg_sent_total",
            "grpc_server_handling_seconds_count",
            "grpc_client_msg_sent_total",
            "grpc_client_msg_received_total",
            "grpc_client_handling_seconds_count",
        )
    }
    handled_before = sample("grpc_client_handled_total", **ok)
    await gate_pb2_grpc.GateServiceStub(channel).SubmitIntent(valid_submit())
    await grows("grpc_client_handled_total", ok, handled_before)
    for name, value in before.items():
        assert sample(name, **labels) == value + 1, name


async def test_a_domain_error_is_counted_with_the_code_it_maps_to(served):
    _, channel = served
    mapped = {**series("unary", GATE, "GetIntent"), "grpc_code": "FAILED_PRECONDITION"}
    before = sample("grpc_server_handled_total", **mapped)
    with pytest.raises(grpc.aio.AioRpcError):
        await gate_pb2_grpc.GateServiceStub(channel).GetIntent(
            gate_pb2.GetIntentRequest(
                organization_id="org-1", intent_id="0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
            )
        )
    await grows("grpc_server_handled_total", mapped, before)


async def test_a_stream_the_client_cancels_is_counted_cancelled_as_a_server_stream(served):
    ops, channel = served
    labels = series("server_stream", OPS, "WatchIntents")
    cancelled = {**labels, "grpc_code": "CANCELLED"}
    before = {
        "server": sample("grpc_server_handled_total", **cancelled),
        "client": sample("grpc_client_handled_total", **cancelled),
        "sent": sample("grpc_server_msg_sent_total", **labels),
        "received": sample("grpc_client_msg_received_total", **labels),
    }
    call: Any = ops_pb2_grpc.OpsServiceStub(channel).WatchIntents(
        ops_pb2.WatchIntentsRequest(organization_id="org-1")
    )
    first = await call.read()  # read() as well as iteration: the call is grpc's own, counted
    assert first.position == "1"
    await ops.writing.wait()
    call.cancel()
    await grows("grpc_server_handled_total", cancelled, before["server"])
    await grows("grpc_client_handled_total", cancelled, before["client"])
    assert sample("grpc_server_msg_sent_total", **labels) == before["sent"] + 1
    assert sample("grpc_client_msg_received_total", **labels) == before["received"] + 1


async def test_a_stream_keeps_its_initial_metadata_and_counts_what_it_iterates(served):
    _, channel = served
    labels = series("server_stream", OPS, "WatchIntents")
    received = sample("grpc_client_msg_received_total", **labels)
    call: Any = ops_pb2_grpc.OpsServiceStub(channel).WatchIntents(
        ops_pb2.WatchIntentsRequest(organization_id="org-1")
    )
    assert await call.initial_metadata() is not None
    async for response in call:
        assert response.position == "1"
        break
    call.cancel()
    assert sample("grpc_client_msg_received_total", **labels) == received + 1


async def test_a_stream_past_its_deadline_is_counted_deadline_exceeded(served):
    _, channel = served
    expired = {**series("server_stream", OPS, "WatchIntents"), "grpc_code": "DEADLINE_EXCEEDED"}
    before = sample("grpc_server_handled_total", **expired)
    call: Any = ops_pb2_grpc.OpsServiceStub(channel).WatchIntents(
        ops_pb2.WatchIntentsRequest(organization_id="org-1"), timeout=0.5
    )
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        async for _ in call:
            pass
    assert ended.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await grows("grpc_server_handled_total", expired, before)
