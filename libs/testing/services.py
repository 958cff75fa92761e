"""Run a service in-process, exactly as `__main__` wires it, on a free port: for integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from libs.config import ServiceSettings
from libs.rpc.client import open_channel
from libs.rpc.server import GrpcServer
from libs.runtime import ServiceParts


@dataclass
class RunningService:
    address: str
    channel: grpc.aio.Channel
    parts: ServiceParts


@asynccontextmanager
async def running_service(
    build: Callable[..., Awaitable[ServiceParts]], settings: ServiceSettings, **build_kwargs: Any
) -> AsyncIterator[RunningService]:
    parts = await build(settings, **build_kwargs)
    server = GrpcServer(
        parts.bindings,
        host="127.0.0.1",
        port=0,
        max_receive_message_bytes=settings.grpc_max_receive_bytes,
        outages=parts.outages,
    )
    port = await server.start()
    stop = asyncio.Event()
    workers = [asyncio.create_task(worker(stop)) for worker in parts.workers]
    channel = open_channel(f"127.0.0.1:{port}")
    try:
        yield RunningService(f"127.0.0.1:{port}", channel, parts)
    finally:
        stop.set()
        await channel.close()
        await server.stop(1.0)
        await asyncio.wait(workers, timeout=5) if workers else None
        for task in workers:
            task.cancel()
        if parts.close is not None:
            await parts.close()
