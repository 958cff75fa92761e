"""Fixtures for the simulator tests: a webhook receiver, a running simulator and the real WAHA adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from libs.provider_simulator import ProviderSimulator, run_simulator
from libs.providers import WahaProvider
from tests.libs.provider_simulator.receiver import WebhookReceiver

API_KEY = "sim-api-key"
SECRET = "webhook-secret-of-at-least-32-characters"


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
def waha(simulator: ProviderSimulator, http: aiohttp.ClientSession) -> WahaProvider:
    return WahaProvider(base_url=simulator.base_url, api_key=API_KEY, session=http, timeout=5)
