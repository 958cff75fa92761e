"""Contract of the shared plumbing: a timeout is AMBIGUOUS only when the request may have left."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from libs.providers import ErrorClass, ProviderError, SendTextRequest, WahaProvider, create_client_session
from tests.contract.providers.stub import ProviderStub

SENT = {"id": "true_5511987650000@c.us_3EB0A1B2C3D4E5F60718"}


def request() -> SendTextRequest:
    return SendTextRequest(instance_ref="s", recipient="5511987650000", text="x")


async def test_timeout_while_waiting_for_a_pooled_connection_is_transient(stub: ProviderStub) -> None:
    stub.reply(201, SENT, delay=1.0)
    # One connection only: the second send waits in the pool and never writes a byte.
    async with create_client_session(limit=1, limit_per_host=1) as session:
        slow = WahaProvider(base_url=stub.base_url, api_key="k", session=session, timeout=2.0)
        queued = WahaProvider(base_url=stub.base_url, api_key="k", session=session, timeout=0.3)
        first = asyncio.create_task(slow.send_text(request()))
        await asyncio.sleep(0.1)
        with pytest.raises(ProviderError) as caught:
            await queued.send_text(request())
        assert caught.value.error_class is ErrorClass.TRANSIENT
        await first
    assert len(stub.requests) == 1


async def test_without_the_tracer_every_timeout_is_assumed_to_have_left(stub: ProviderStub) -> None:
    stub.reply(201, SENT, delay=1.0)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        slow = WahaProvider(base_url=stub.base_url, api_key="k", session=session, timeout=2.0)
        queued = WahaProvider(base_url=stub.base_url, api_key="k", session=session, timeout=0.3)
        first = asyncio.create_task(slow.send_text(request()))
        await asyncio.sleep(0.1)
        with pytest.raises(ProviderError) as caught:
            await queued.send_text(request())
        assert caught.value.error_class is ErrorClass.AMBIGUOUS
        await first


async def test_server_dropping_the_connection_after_the_request_is_ambiguous(
    http: aiohttp.ClientSession,
) -> None:
    async def accept_and_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(accept_and_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        provider = WahaProvider(base_url=f"http://127.0.0.1:{port}", api_key="k", session=http, timeout=2)
        with pytest.raises(ProviderError) as caught:
            await provider.send_text(request())
        assert (caught.value.error_class, caught.value.code) == (ErrorClass.AMBIGUOUS, "connection_lost")
    finally:
        server.close()
        await server.wait_closed()
