"""One HTTP server of the gateway bench, in its own process: `python -m tests.bench._gateway_server MODE`.

MODE: `gateway` (the real app from gateway.bootstrap, with the verifier and normalizer production wires),
`gateway-fake-normalizer` (the same with the tests' fake normalizer, for as long as production has none),
`bare` (a Starlette handler that only awaits the same JetStream publish) and `bare-asyncio` (the same on
asyncio's loop and uvicorn's h11 parser instead of uvloop and httptools). Settings from the GATEWAY_
environment, as the gateway's own."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime

import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.bootstrap import GatewayParts, build, webhook_adapters
from gateway.config import GatewaySettings
from gateway.domain.events import ProviderEvent, ProviderEventKind
from gateway.entrypoints.server import serve, server_config
from gateway.infrastructure.proto_mapping import to_proto
from libs.logs import configure_logging
from libs.messaging import envelope
from libs.messaging.nats_connection import connect_nats
from libs.messaging.publisher import JetStreamPublisher, OutgoingEvent
from libs.seedwork.shared_kernel import Provider
from libs.stores import StoreOutages
from tests.gateway.fakes import FakeNormalizer


async def bare(settings: GatewaySettings) -> GatewayParts:
    nats = await connect_nats(settings.nats_url, name="bench-bare")
    publisher = JetStreamPublisher(nats.jetstream(), max_payload=nats.max_payload)
    # The event a WAHA read receipt becomes, so the publish carries what the gateway's does.
    sample = ProviderEvent(
        kind=ProviderEventKind.MESSAGE_READ,
        provider=Provider.WAHA,
        instance_id=str(uuid.uuid4()),
        provider_instance_ref="bench",
        occurred_at=datetime.now(UTC),
        provider_message_id="true_5511987650000@c.us_3EB0A1B2C3D4E5F60718",
        remote_jid="5511987650000@c.us",
        from_me=True,
    )
    encoded = envelope.encode(to_proto(sample, received_at=datetime.now(UTC)))
    subject = envelope.full_subject(settings.subject_root, encoded.subject_suffix)

    async def handler(request: Request) -> Response:
        await request.body()
        headers = {envelope.MSG_ID_HEADER: str(uuid.uuid4()), envelope.TYPE_HEADER: encoded.type_name}
        await publisher.publish_all([OutgoingEvent(subject, encoded.payload, headers)])
        return JSONResponse({"events": 1, "duplicates": 0})

    app = Starlette(routes=[Route("/webhooks/{provider}/{instance_id}", handler, methods=["POST"])])
    return GatewayParts(app, StoreOutages("bench"), nats.drain)


async def main(mode: str) -> None:
    settings = GatewaySettings.load()
    if mode == "gateway":
        verifier, normalizer = webhook_adapters(settings)
        parts = await build(settings, verifier=verifier, normalizer=normalizer)
    elif mode == "gateway-fake-normalizer":
        verifier, _ = webhook_adapters(settings)
        parts = await build(settings, verifier=verifier, normalizer=FakeNormalizer())
    else:
        parts = await bare(settings)
    config = server_config(settings, parts)
    if mode == "bare-asyncio":
        config.http = "h11"
    await serve(settings, parts, config=config)


if __name__ == "__main__":
    mode = sys.argv[1]
    configure_logging("bench-" + mode, "WARNING")
    if mode == "bare-asyncio":
        asyncio.run(main(mode))
    else:
        uvloop.run(main(mode))
