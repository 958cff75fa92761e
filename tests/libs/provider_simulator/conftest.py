"""Fixtures for the simulator tests: a webhook receiver, a running simulator and the real WAHA adapter."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from libs.provider_simulator import ProviderSimulator, run_simulator
from libs.providers import WahaProvider, create_client_session

API_KEY = "sim-api-key"
SECRET = "webhook-secret-of-at-least-32-characters"


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    raw: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.raw)


class WebhookReceiver:
    """Records every webhook; can be told to answer 500 to the next N deliveries."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.refuse_next = 0
        self.refused = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.refuse_next:
            self.refuse_next -= 1
            self.refused += 1
            return web.Response(status=500)
        self.deliveries.append(Delivery(dict(request.headers), raw))
        return web.Response(status=200)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [d.event for d in self.deliveries if name is None or d.event["event"] == name]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhooks/waha", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/webhooks/waha"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def simulator(receiver: WebhookReceiver) -> AsyncIterator[ProviderSimulator]:
    async with run_simulator(
        api_key=API_KEY,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        server_ack_ms=10,
        device_ack_ms=30,
        read_ack_ms=60,
        reply_delay_ms=80,
        webhook_retry_base_ms=20,
        seed=7,
    ) as sim:
        yield sim


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = create_client_session()
    yield session
    await session.close()


@pytest.fixture
def waha(simulator: ProviderSimulator, http: aiohttp.ClientSession) -> WahaProvider:
    return WahaProvider(base_url=simulator.base_url, api_key=API_KEY, session=http, timeout=5)
