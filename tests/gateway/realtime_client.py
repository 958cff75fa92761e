"""The gateway's HTTP server with its real /v1/realtime wiring (bootstrap.realtime_endpoint), served by
uvicorn as production serves it (`serve`: its WebSocket protocol, its shutdown), the webhook side faked
(no NATS); and a real WebSocket client (the `websockets` library) to reach it as a program or a browser."""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.application.receive_webhook import ReceiveWebhookHandler
from gateway.bootstrap import GatewayParts, realtime_endpoint
from gateway.config import GatewaySettings
from gateway.entrypoints.http import WebhookEndpoint, create_app
from gateway.entrypoints.server import serve, server_config
from libs.seedwork.clock import FakeClock
from libs.stores import StoreOutages
from libs.testing.waiting import eventually
from tests.gateway.fakes import FakeEventSink, FakeNormalizer, FakeVerifier
from tests.sending_path import free_port


@dataclass
class RealtimeGateway:
    url: str  # ws://host:port

    def connect(self, query: str = "", **options: Any) -> Any:
        """`websockets` connect(): `async with` it for the socket."""
        return connect(f"{self.url}/v1/realtime{query}", **options)

    def as_key(self, key: str, query: str = "", **options: Any) -> Any:
        """As a program: the key in the Authorization header."""
        return self.connect(query, additional_headers={"Authorization": f"Bearer {key}"}, **options)

    def as_browser(self, key: str, query: str = "", **options: Any) -> Any:
        """As a browser: the key in a subprotocol beside whatlead.v1."""
        return self.connect(query, subprotocols=["whatlead.v1", f"bearer.{key}"], **options)


@asynccontextmanager
async def running_gateway(
    ops_address: str, *, stop: asyncio.Event | None = None, **settings: Any
) -> AsyncIterator[RealtimeGateway]:
    """Serves until the block ends or `stop` is set (as SIGTERM would)."""
    port = free_port()
    config = GatewaySettings(
        webhook_master_key=SecretStr(secrets.token_hex(32)),
        http_port=port,
        ops_address=ops_address,
        shutdown_grace_seconds=4,
        **settings,
    )
    realtime, close_realtime = realtime_endpoint(config)
    handler = ReceiveWebhookHandler(FakeVerifier(), FakeNormalizer(), FakeEventSink(), FakeClock())
    endpoint = WebhookEndpoint(handler, StoreOutages("gateway-test"), max_body_bytes=1024)
    app = create_app(endpoint, _ready, realtime)
    parts = GatewayParts(app, StoreOutages("gateway-test"), close_realtime, realtime)
    stop = stop or asyncio.Event()
    serving = asyncio.create_task(serve(config, parts, config=server_config(config, parts), stop=stop))
    await eventually(lambda: _answers(f"http://127.0.0.1:{port}/healthz"))
    try:
        yield RealtimeGateway(f"ws://127.0.0.1:{port}")
    finally:
        stop.set()
        await serving


async def _ready() -> bool:
    return True


async def _answers(url: str) -> bool:
    return await asyncio.to_thread(http_status, url) == 200


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


async def frames(socket: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next `count` frames, decoded."""
    return [json.loads(await asyncio.wait_for(socket.recv(), 10)) for _ in range(count)]


async def closed(socket: ClientConnection) -> tuple[int, str]:
    """The close code and reason the gateway ended the socket with (frames before it are read and dropped)."""
    try:
        while True:
            await asyncio.wait_for(socket.recv(), 10)
    except ConnectionClosed as close:
        assert close.rcvd is not None, "the connection ended without a close frame"
        return close.rcvd.code, close.rcvd.reason
