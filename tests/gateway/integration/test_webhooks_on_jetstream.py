"""The gateway on real NATS JetStream, built by its bootstrap: a webhook posted many times is one event in
the stream; with NATS stopped webhooks are answered 503 and nothing is stored, and the provider's retry
after NATS came back is stored once (these with fakes for the providers' verifier and normalizer); and a
real WAHA receipt through production's own."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import nats
import pytest
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from pydantic import SecretStr

from gateway.bootstrap import GatewayParts, build, webhook_adapters
from gateway.config import GatewaySettings
from libs.messaging import envelope
from libs.messaging.streams import delete_streams
from libs.seedwork.ids import new_id
from libs.webhooks import webhook_secret
from tests.conftest import NATS_URL
from tests.gateway.fakes import MASTER_KEY, SIGNATURE_HEADER, FakeNormalizer, FakeVerifier, sign, webhook
from tests.sending_path import OwnNatsServer
from whatlead.events.v1 import provider_events_pb2

INSTANCE = new_id()
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"


@asynccontextmanager
async def gateway(nats_url: str, root: str) -> AsyncIterator[tuple[httpx.AsyncClient, GatewayParts]]:
    settings = GatewaySettings(
        nats_url=nats_url,
        subject_root=root,
        webhook_master_key=SecretStr(MASTER_KEY.decode()),
        publish_timeout_seconds=2,
    )
    parts = await build(settings, verifier=FakeVerifier(), normalizer=FakeNormalizer())
    transport = httpx.ASGITransport(app=parts.app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client, parts
    finally:
        await parts.close()


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(INSTANCE, body)}
    return await client.post(f"/webhooks/waha/{INSTANCE}", content=body, headers=headers)


async def stored(js: JetStreamContext, root: str) -> list[provider_events_pb2.ProviderEventReceived]:
    """Every event in the gateway's stream of `root`, in order."""
    stream = envelope.stream_name(root, "gateway")
    count = (await js.stream_info(stream)).state.messages
    events = []
    for sequence in range(1, count + 1):
        message = await js.get_msg(stream, sequence)
        assert message.headers is not None and message.data is not None
        event = provider_events_pb2.ProviderEventReceived.FromString(message.data)
        assert message.headers[envelope.MSG_ID_HEADER] == event.meta.event_id
        events.append(event)
    return events


async def until(client: httpx.AsyncClient, path: str, status: int, timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (await client.get(path)).status_code != status:
        assert asyncio.get_running_loop().time() < deadline, f"{path} never answered {status}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def own_root(jetstream: JetStreamContext, subject_root: str) -> AsyncIterator[str]:
    """A subject root of this test's own, so the stream holds only what it posts."""
    root = f"{subject_root}_gw{secrets.token_hex(2)}"
    yield root
    await delete_streams(jetstream, root, ("gateway",))


async def test_the_same_webhook_posted_five_times_is_one_event_in_the_stream(
    jetstream: JetStreamContext, own_root: str
):
    body = webhook({"kind": "MESSAGE_DELIVERED", "message_id": "msg-five"})
    duplicates_before = counted("whatlead_gateway_duplicates_total", provider="WAHA")
    publishes_before = counted("whatlead_gateway_publish_seconds_count")
    async with gateway(NATS_URL, own_root) as (client, _):
        assert (await client.get("/readyz")).status_code == 200
        answers = [await post(client, body) for _ in range(5)]

    assert [answer.status_code for answer in answers] == [200] * 5
    assert [answer.json()["duplicates"] for answer in answers] == [0, 1, 1, 1, 1]
    assert counted("whatlead_gateway_duplicates_total", provider="WAHA") == duplicates_before + 4
    assert counted("whatlead_gateway_publish_seconds_count") == publishes_before + 5
    [event] = await stored(jetstream, own_root)
    assert event.type == provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED
    assert (event.instance_id, event.provider_message_id) == (INSTANCE, "msg-five")


@pytest.mark.integration
async def test_nats_stopped_is_503_with_nothing_stored_and_the_retry_lands_once_when_it_is_back():
    server = OwnNatsServer()
    await server.start()
    root = "gwoutage"
    before = webhook({"kind": "MESSAGE_SENT", "message_id": "msg-before"})
    during = webhook({"kind": "MESSAGE_READ", "message_id": "msg-during"})
    try:
        async with gateway(server.url, root) as (client, _):
            assert (await post(client, before)).status_code == 200

            server.stop()
            await until(client, "/readyz", 503)
            refused = await post(client, during)
            assert refused.status_code == 503
            assert refused.headers["content-type"] == "application/problem+json"

            await server.start()  # same store: the stream comes back with what it had
            await until(client, "/readyz", 200)
            observer = await nats.connect(server.url)
            js = observer.jetstream()
            assert [e.provider_message_id for e in await stored(js, root)] == ["msg-before"]

            retries = [await post(client, during) for _ in range(2)]  # the provider retries (twice)
            assert [r.status_code for r in retries] == [200, 200]
            events = await stored(js, root)
            await observer.close()
    finally:
        server.remove()

    assert [e.provider_message_id for e in events] == ["msg-before", "msg-during"]


async def test_a_real_waha_read_receipt_goes_through_production_s_verifier_and_normalizer(
    jetstream: JetStreamContext, own_root: str
):
    master_key = secrets.token_hex(32)
    settings = GatewaySettings(
        nats_url=NATS_URL, subject_root=own_root, webhook_master_key=SecretStr(master_key)
    )
    verifier, normalizer = webhook_adapters(settings)
    parts = await build(settings, verifier=verifier, normalizer=normalizer)
    body = (FIXTURES / "waha" / "message_ack_read.json").read_bytes()
    secret = webhook_secret(master_key.encode(), INSTANCE).encode()
    signed = {
        "content-type": "application/json",
        "x-webhook-hmac": hmac.new(secret, body, hashlib.sha512).hexdigest(),
        "x-webhook-hmac-algorithm": "sha512",
    }
    url = f"/webhooks/waha/{INSTANCE}"
    try:
        transport = httpx.ASGITransport(app=parts.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            accepted = await client.post(url, content=body, headers=signed)
            forged = await client.post(url, content=body.replace(b"READ", b"PLAYED"), headers=signed)
    finally:
        await parts.close()

    assert accepted.status_code == 200, accepted.text
    assert forged.status_code == 401
    [event] = await stored(jetstream, own_root)
    assert event.type == provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_READ
    assert event.provider_message_id == json.loads(body)["payload"]["id"]
    assert (event.instance_id, event.from_me) == (INSTANCE, True)
