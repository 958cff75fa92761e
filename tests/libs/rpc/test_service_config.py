"""The published service config (protos/service_config.json), as every channel of `open_channel` loads it:
a call to a method that is safe to repeat goes through a server that was UNAVAILABLE for a moment, a write
is never sent twice, and the config names only methods the contracts declare. Loopback only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from libs.rpc.client import SERVICE_CONFIG, open_channel
from whatlead.executor.v1 import executor_pb2
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc
from whatlead.ops.v1 import ops_pb2
from whatlead.reputation.v1 import reputation_pb2

SERVICES = {
    service.full_name: service
    for module in (gate_pb2, executor_pb2, reputation_pb2, ops_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
}


def safe_to_repeat(method: str) -> bool:
    """Reads. No write: SubmitIntent is repeatable only with an idempotency key, which is optional, and a
    service config cannot tell a call with one from a call without (a message must never go twice). No
    stream: its client resumes it from the last position it received, which a channel cannot know."""
    return method.startswith(("Get", "List", "Resolve"))


class UnavailableOnce:
    """GateService's GetIntent (a read) and CreateIntent (a write), each answering its first call
    UNAVAILABLE as a server that is restarting; counts every call."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    async def _once_unavailable(self, method: str, context: Any) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        if self.calls[method] == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")

    async def get_intent(
        self, request: gate_pb2.GetIntentRequest, context: Any
    ) -> gate_pb2.GetIntentResponse:
        await self._once_unavailable("GetIntent", context)
        return gate_pb2.GetIntentResponse(intent=gate_pb2.MessageIntent(id=request.intent_id))

    async def create_intent(
        self, request: gate_pb2.CreateIntentRequest, context: Any
    ) -> gate_pb2.CreateIntentResponse:
        await self._once_unavailable("CreateIntent", context)
        return gate_pb2.CreateIntentResponse()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "whatlead.gate.v1.GateService",
            {
                "GetIntent": grpc.unary_unary_rpc_method_handler(
                    self.get_intent,
                    request_deserializer=gate_pb2.GetIntentRequest.FromString,
                    response_serializer=gate_pb2.GetIntentResponse.SerializeToString,
                ),
                "CreateIntent": grpc.unary_unary_rpc_method_handler(
                    self.create_intent,
                    request_deserializer=gate_pb2.CreateIntentRequest.FromString,
                    response_serializer=gate_pb2.CreateIntentResponse.SerializeToString,
                ),
            },
        )


@pytest.fixture
async def gate() -> AsyncIterator[tuple[UnavailableOnce, gate_pb2_grpc.GateServiceStub]]:
    servicer = UnavailableOnce()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((servicer.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = open_channel(f"127.0.0.1:{port}")
    try:
        yield servicer, gate_pb2_grpc.GateServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(grace=None)


async def test_a_read_goes_through_a_server_that_was_unavailable_once(gate):
    servicer, stub = gate

    response = await stub.GetIntent(gate_pb2.GetIntentRequest(organization_id="org-a", intent_id="i-1"))

    assert response.intent.id == "i-1"
    assert servicer.calls["GetIntent"] == 2


async def test_a_write_is_not_sent_again(gate):
    servicer, stub = gate

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CreateIntent(gate_pb2.CreateIntentRequest(organization_id="org-a"))

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls["CreateIntent"] == 1


def configured_methods() -> list[tuple[dict[str, Any], str, str]]:
    """Every (method config, service, method) the config names; method "" for a whole service."""
    config = json.loads(SERVICE_CONFIG.read_text())
    return [
        (entry, name["service"], name.get("method", ""))
        for entry in config["methodConfig"]
        for name in entry["name"]
    ]


def test_the_config_retries_exactly_the_methods_that_are_safe_to_repeat():
    retried = {(s, m) for entry, s, m in configured_methods() if "retryPolicy" in entry}
    expected = {(s.full_name, m.name) for s in SERVICES.values() for m in s.methods if safe_to_repeat(m.name)}

    assert retried == expected
    for entry, _, _ in configured_methods():
        if "retryPolicy" in entry:
            assert entry["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


def test_every_service_has_a_deadline_and_streams_are_not_cut_by_one():
    configured = configured_methods()
    whole_services = {s for entry, s, m in configured if not m and "timeout" in entry}
    assert whole_services == set(SERVICES)
    for entry, service, method in configured:
        assert service in SERVICES and (not method or method in SERVICES[service].methods_by_name)
        if method and SERVICES[service].methods_by_name[method].server_streaming:
            assert "timeout" not in entry, f"{method} is a stream a deadline would end"


async def test_calls_are_spread_over_every_address_the_name_resolves_to():
    """round_robin: behind a headless Service one name resolves to every pod, and each call goes to the next
    pod rather than every call to the first connection (pick_first, gRPC's default)."""
    servicers = [UnavailableOnce(), UnavailableOnce()]
    servers = []
    ports = []
    for servicer in servicers:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((servicer.handler(),))
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        servers.append(server)
    channel = open_channel("ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports))
    try:
        stub = gate_pb2_grpc.GateServiceStub(channel)
        for number in range(20):
            await stub.GetIntent(gate_pb2.GetIntentRequest(organization_id="org-a", intent_id=f"i-{number}"))
    finally:
        await channel.close()
        for server in servers:
            await server.stop(grace=None)

    # Each server answers its first call UNAVAILABLE (retried), so the 20 calls are 22 attempts in all.
    calls = [servicer.calls["GetIntent"] for servicer in servicers]
    assert sum(calls) == 22
    assert min(calls) >= 5, calls
