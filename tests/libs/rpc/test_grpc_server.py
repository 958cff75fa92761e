"""The shared gRPC server: several acceptors on one port, store outages answered UNAVAILABLE with health
NOT_SERVING (on loopback, no other server needed)."""

from __future__ import annotations

import asyncio
import socket

import grpc
import pytest
import redis.exceptions
from grpc_health.v1 import health_pb2

from libs.rpc.client import health_check
from libs.rpc.server import LIVENESS, GrpcServer, ServicerBinding
from libs.stores import Store, StoreKind, StoreOutages
from libs.testing.waiting import eventually


async def test_several_acceptors_serve_one_port_and_stop_together():
    server = GrpcServer([], host="127.0.0.1", port=0, acceptors=3, authenticator=None)
    port = await server.start()
    try:
        # Connections land on whichever acceptor the kernel picks; each must answer.
        channels = [
            grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(6)
        ]
        replies = await asyncio.gather(
            *(health_check(channel)(health_pb2.HealthCheckRequest(), timeout=5) for channel in channels)
        )
        assert {r.status for r in replies} == {health_pb2.HealthCheckResponse.SERVING}
        for channel in channels:
            await channel.close()
    finally:
        await server.stop(0)
    with socket.socket() as probe:  # every acceptor let go of the port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


async def test_acceptors_refuse_a_port_another_server_already_serves():
    first = GrpcServer([], host="127.0.0.1", port=0, acceptors=2, authenticator=None)
    port = await first.start()
    try:
        second = GrpcServer([], host="127.0.0.1", port=port, acceptors=2, authenticator=None)
        with pytest.raises(OSError, match="already in use"):
            await second.start()
    finally:
        await first.stop(0)


FAILING = "whatlead.test.Failing"


async def fails_on_its_store(request: bytes, context: object) -> bytes:
    raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


async def fails_on_a_bug(request: bytes, context: object) -> bytes:
    raise ValueError("a bug")


def add_failing_service(servicer: object, server: grpc.aio.Server) -> None:
    """A service of two methods on raw bytes: one fails as it would with its store away, one as a bug."""
    handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {
        "Outage": grpc.unary_unary_rpc_method_handler(fails_on_its_store),
        "Bug": grpc.unary_unary_rpc_method_handler(fails_on_a_bug),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(FAILING, handlers),))


def failing(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(f"/{FAILING}/{method}", request_serializer=bytes, response_deserializer=bytes)


async def test_a_store_outage_answers_unavailable_and_turns_health_not_serving_until_the_store_is_back():
    store_answers = False

    async def probe() -> None:
        if not store_answers:
            raise redis.exceptions.ConnectionError("still refused")

    outages = StoreOutages("rpc-test", probe_interval=0.01)
    outages.add(Store(StoreKind.REDIS, holds="rate windows", probe=probe))
    binding = ServicerBinding(object(), add_failing_service, FAILING)
    server = GrpcServer([binding], host="127.0.0.1", port=0, outages=outages, authenticator=None)
    port = await server.start()
    stop = asyncio.Event()
    watcher = asyncio.create_task(outages.watch(stop))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    async def health_is(status: int) -> bool:
        replies = [
            await health_check(channel)(health_pb2.HealthCheckRequest(service=service), timeout=5)
            for service in ("", FAILING)
        ]
        return all(reply.status == status for reply in replies)

    try:
        with pytest.raises(grpc.aio.AioRpcError) as outage:
            await failing(channel, "Outage")(b"", timeout=5)
        assert outage.value.code() is grpc.StatusCode.UNAVAILABLE
        assert outage.value.details() == "the rate windows store is unavailable; retry"
        await eventually(lambda: health_is(health_pb2.HealthCheckResponse.NOT_SERVING))
        liveness = await health_check(channel)(health_pb2.HealthCheckRequest(service=LIVENESS), timeout=5)
        assert liveness.status == health_pb2.HealthCheckResponse.SERVING  # no restart cures an outage

        with pytest.raises(grpc.aio.AioRpcError) as bug:  # anything else is still INTERNAL
            await failing(channel, "Bug")(b"", timeout=5)
        assert bug.value.code() is grpc.StatusCode.INTERNAL and bug.value.details() == "internal error"

        store_answers = True
        await eventually(lambda: health_is(health_pb2.HealthCheckResponse.SERVING))
    finally:
        stop.set()
        await watcher
        await channel.close()
        await server.stop(0)
