"""The shared gRPC server with several acceptors on one port (on loopback, no other server needed)."""

from __future__ import annotations

import asyncio
import socket

import grpc
import pytest
from grpc_health.v1 import health_pb2

from libs.rpc.client import health_check
from libs.rpc.server import GrpcServer


async def test_several_acceptors_serve_one_port_and_stop_together():
    server = GrpcServer([], host="127.0.0.1", port=0, acceptors=3)
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
    first = GrpcServer([], host="127.0.0.1", port=0, acceptors=2)
    port = await first.start()
    try:
        second = GrpcServer([], host="127.0.0.1", port=port, acceptors=2)
        with pytest.raises(OSError, match="already in use"):
            await second.start()
    finally:
        await first.stop(0)
