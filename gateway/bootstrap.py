"""Builds the gateway from its settings: the only place that knows every concrete class."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette

from gateway.application.ports import WebhookNormalizer, WebhookVerifier
from gateway.application.receive_webhook import ReceiveWebhookHandler
from gateway.application.relay_intent_changes import RelayIntentChanges
from gateway.config import GatewaySettings
from gateway.domain.normalization import ProviderNormalizer
from gateway.entrypoints.http import WebhookEndpoint, create_app
from gateway.entrypoints.realtime import RealtimeEndpoint
from gateway.infrastructure.ops_changes import GrpcIntentChangeFeed
from gateway.infrastructure.publisher import JetStreamEventSink, JetStreamReadiness
from gateway.infrastructure.verification import SecretVerifier
from libs.messaging.nats_connection import connect_nats
from libs.messaging.publisher import JetStreamPublisher
from libs.messaging.streams import ensure_streams
from libs.rpc.client import open_channel
from libs.seedwork.clock import Clock, SystemClock
from libs.stores import Store, StoreKind, StoreOutages, jetstream_probe

SERVICE = "gateway"


@dataclass
class GatewayParts:
    app: Starlette
    outages: StoreOutages
    close: Callable[[], Awaitable[None]]
    # Closed first on shutdown (1001); a server without one (the bench's bare app) has no sockets to close.
    realtime: RealtimeEndpoint = field(default_factory=lambda: RealtimeEndpoint(None))


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
    realtime, close_realtime = realtime_endpoint(settings)
    app = create_app(endpoint, JetStreamReadiness(nats, subject_root=settings.subject_root), realtime)

    async def close() -> None:
        await close_realtime()
        await nats.drain()

    return GatewayParts(app, outages, close, realtime)


def realtime_endpoint(settings: GatewaySettings) -> tuple[RealtimeEndpoint, Callable[[], Awaitable[None]]]:
    """/v1/realtime and what closes it: ops' WatchIntents through one channel (no credential of its own:
    each call carries its socket's key), or, with no ops address, an endpoint that closes every socket."""
    if not settings.ops_address:
        return RealtimeEndpoint(None, allowed_origins=settings.realtime_allowed_origins), _nothing_to_close
    # No BDP probing: it grows each stream's receive window to megabytes, which a stalled socket's stream
    # would fill; at the default 64 KiB, ops (in the same cluster) is still read faster than sockets drain.
    channel = open_channel(settings.ops_address, options=[("grpc.http2.bdp_probe", 0)])
    relay = RelayIntentChanges(
        GrpcIntentChangeFeed(channel, max_stream_seconds=settings.realtime_max_stream_seconds),
        queue_frames=settings.realtime_queue_frames,
        stall_seconds=settings.realtime_stall_seconds,
    )
    endpoint = RealtimeEndpoint(relay, allowed_origins=settings.realtime_allowed_origins)
    return endpoint, lambda: channel.close()


async def _nothing_to_close() -> None:
    return None


# --- Each provider's verifier and normalizer ------------------------------------------------------------


def webhook_adapters(settings: GatewaySettings) -> tuple[WebhookVerifier, WebhookNormalizer]:
    current, *previous = settings.master_keys()
    return SecretVerifier(current, previous[0] if previous else None), ProviderNormalizer()
