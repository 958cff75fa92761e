"""Builds the gateway from its settings: the only place that knows every concrete class."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.applications import Starlette

from gateway.application.ports import WebhookNormalizer, WebhookVerifier
from gateway.application.receive_webhook import ReceiveWebhookHandler
from gateway.config import GatewaySettings
from gateway.domain.normalization import ProviderNormalizer
from gateway.entrypoints.http import WebhookEndpoint, create_app
from gateway.infrastructure.publisher import JetStreamEventSink, JetStreamReadiness
from gateway.infrastructure.verification import SecretVerifier
from libs.messaging.nats_connection import connect_nats
from libs.messaging.publisher import JetStreamPublisher
from libs.messaging.streams import ensure_streams
from libs.seedwork.clock import Clock, SystemClock
from libs.stores import Store, StoreKind, StoreOutages, jetstream_probe

SERVICE = "gateway"


@dataclass
class GatewayParts:
    app: Starlette
    outages: StoreOutages
    close: Callable[[], Awaitable[None]]


async def build(
    settings: GatewaySettings,
    *,
    verifier: WebhookVerifier,
    normalizer: WebhookNormalizer,
    clock: Clock | None = None,
) -> GatewayParts:
    clock = clock or SystemClock()
    nats = await connect_nats(settings.nats_url, name=SERVICE)
    js = nats.jetstream()
    await ensure_streams(js, settings.subject_root, contexts=(SERVICE,))
    # NATS is the gateway's only store: while it is away webhooks are answered 503 and /readyz says so.
    outages = StoreOutages(SERVICE)
    outages.add(Store(StoreKind.NATS, holds="events", probe=jetstream_probe(js)))
    publisher = JetStreamPublisher(js, timeout=settings.publish_timeout_seconds, max_payload=nats.max_payload)
    sink = JetStreamEventSink(nats, publisher, subject_root=settings.subject_root, clock=clock)
    receive = ReceiveWebhookHandler(verifier, normalizer, sink, clock)
    endpoint = WebhookEndpoint(receive, outages, max_body_bytes=settings.max_body_bytes)
    app = create_app(endpoint, JetStreamReadiness(nats, subject_root=settings.subject_root))
    return GatewayParts(app, outages, nats.drain)


# --- Each provider's verifier and normalizer ------------------------------------------------------------


def webhook_adapters(settings: GatewaySettings) -> tuple[WebhookVerifier, WebhookNormalizer]:
    current, *previous = settings.master_keys()
    return SecretVerifier(current, previous[0] if previous else None), ProviderNormalizer()
