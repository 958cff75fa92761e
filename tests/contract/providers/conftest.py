"""Fixtures of the provider contracts: a scripted provider stub, the shared HTTP session, a closed port."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from tests.contract.providers.stub import ProviderStub


@pytest.fixture
async def stub() -> AsyncIterator[ProviderStub]:
    server = ProviderStub()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
