"""Fixtures of the provider contracts: a scripted provider stub, the shared HTTP session, a closed port."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from libs.providers import create_client_session
from tests.contract.providers.stub import ProviderStub


@pytest.fixture
async def stub() -> AsyncIterator[ProviderStub]:
    server = ProviderStub()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = create_client_session()
    yield session
    await session.close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
