"""The EventSink on JetStream: each canonical event as a ProviderEventReceived, its id (derived from the
dedup key) as the Nats-Msg-Id, through libs.messaging's publisher, which returns once every ack is in."""

from __future__ import annotations

import time
from collections.abc import Sequence

import nats.errors
from nats.aio.client import Client
from prometheus_client import Counter, Histogram

from gateway.domain.events import ProviderEvent
from gateway.infrastructure.proto_mapping import to_proto
from libs import tracing
from libs.messaging import envelope
from libs.messaging.publisher import EventPublisher, OutgoingEvent
from libs.seedwork.clock import Clock

PUBLISH_SECONDS = Histogram(
    "whatlead_gateway_publish_seconds",
    "From a webhook's events handed to JetStream to every ack back (failures included)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DUPLICATES = Counter(
    "whatlead_gateway_duplicates_total",
    "Events JetStream already had (a provider's retry, a receipt sent twice): stored once, dropped here",
    ["provider"],
)


class JetStreamEventSink:
    def __init__(self, nats: Client, publisher: EventPublisher, *, subject_root: str, clock: Clock) -> None:
        self._nats = nats
        self._publisher = publisher
        self._root = subject_root
        self._clock = clock

    async def publish(self, events: Sequence[ProviderEvent]) -> list[bool]:
        # Disconnected, nats-py would buffer the publish and send it after reconnecting, long after the
        # provider was answered 503: fail at once instead, so a 503 means "not stored" (the retry stores it).
        if not self._nats.is_connected:
            raise nats.errors.ConnectionReconnectingError
        received_at = self._clock.now()
        outgoing = []
        for event in events:
            encoded = envelope.encode(to_proto(event, received_at=received_at))
            headers = {envelope.MSG_ID_HEADER: encoded.event_id, envelope.TYPE_HEADER: encoded.type_name}
            tracing.inject(headers)  # the webhook's span: consumers continue its trace
            subject = envelope.full_subject(self._root, encoded.subject_suffix)
            outgoing.append(OutgoingEvent(subject, encoded.payload, headers))
        started = time.perf_counter()
        try:
            duplicates = await self._publisher.publish_all(outgoing)
        finally:
            PUBLISH_SECONDS.observe(time.perf_counter() - started)
        for event, duplicate in zip(events, duplicates, strict=True):
            if duplicate:
                DUPLICATES.labels(event.provider.value).inc()
        return duplicates


class JetStreamReadiness:
    """Ready while the connection is up and the gateway's stream exists: what a webhook needs to be
    stored."""

    def __init__(self, nats: Client, *, subject_root: str, timeout: float = 1.0) -> None:
        self._nats = nats
        self._js = nats.jetstream(timeout=timeout)
        self._stream = envelope.stream_name(subject_root, "gateway")

    async def __call__(self) -> bool:
        if not self._nats.is_connected:
            return False
        try:
            await self._js.stream_info(self._stream)
        except Exception:  # not found, timed out, disconnected meanwhile: not ready, whatever the cause
            return False
        return True
