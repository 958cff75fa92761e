"""The gateway's part of a trace, with fakes behind its ports: a webhook continues the caller's
traceparent when it sends one (the simulator does), starts a trace when it does not (real providers),
and the events it publishes carry the webhook's context in their NATS headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.application.receive_webhook import ReceiveWebhookHandler
from gateway.entrypoints.http import WebhookEndpoint, create_app
from gateway.infrastructure.publisher import JetStreamEventSink
from libs import tracing
from libs.messaging.publisher import OutgoingEvent
from libs.seedwork.clock import FakeClock
from libs.seedwork.ids import new_id
from libs.stores import StoreOutages
from tests.gateway.fakes import SIGNATURE_HEADER, FakeNormalizer, FakeVerifier, sign, webhook

INSTANCE = new_id()


class _ConnectedNats:
    is_connected = True


class _CapturingPublisher:
    """The EventPublisher port: keeps what it was asked to publish, every one new."""

    def __init__(self) -> None:
        self.published: list[OutgoingEvent] = []

    async def publish_all(self, events: Sequence[OutgoingEvent]) -> list[bool]:
        self.published.extend(events)
        return [False] * len(events)


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[httpx.AsyncClient, _CapturingPublisher]]:
    publisher = _CapturingPublisher()
    nats: Any = _ConnectedNats()
    sink = JetStreamEventSink(nats, publisher, subject_root="whatlead", clock=FakeClock())
    endpoint = WebhookEndpoint(
        ReceiveWebhookHandler(FakeVerifier(), FakeNormalizer(), sink, FakeClock()),
        StoreOutages("gateway-trace-test"),
        max_body_bytes=64 * 1024,
    )

    async def ready() -> bool:
        return True

    transport = httpx.ASGITransport(app=create_app(endpoint, ready))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client, publisher


async def _post(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    body = webhook({"kind": "MESSAGE_DELIVERED", "message_id": "msg-1"})
    all_headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(INSTANCE, body), **headers}
    return await client.post(f"/webhooks/waha/{INSTANCE}", content=body, headers=all_headers)


async def test_a_webhook_with_a_traceparent_continues_it_and_its_events_carry_the_webhook(
    spans: InMemorySpanExporter, gateway: tuple[httpx.AsyncClient, _CapturingPublisher]
) -> None:
    client, publisher = gateway
    with tracing.span("provider call") as call:
        assert call is not None
        caller: dict[str, str] = {}
        tracing.inject(caller)

    assert (await _post(client, caller)).status_code == 200

    [hook] = [s for s in spans.get_finished_spans() if s.name == "webhook waha"]
    assert hook.kind is SpanKind.SERVER and hook.parent is not None
    assert hook.parent.span_id == call.get_span_context().span_id
    assert dict(hook.attributes or {})["whatlead.instance_id"] == INSTANCE
    [event] = publisher.published
    carried = trace.get_current_span(tracing.extract(event.headers)).get_span_context()
    assert (carried.trace_id, carried.span_id) == (hook.context.trace_id, hook.context.span_id)


async def test_a_webhook_without_one_starts_a_trace(
    spans: InMemorySpanExporter, gateway: tuple[httpx.AsyncClient, _CapturingPublisher]
) -> None:
    client, publisher = gateway

    assert (await _post(client, {})).status_code == 200

    [hook] = spans.get_finished_spans()
    assert hook.parent is None
    assert "traceparent" in publisher.published[0].headers


async def test_with_tracing_off_the_events_carry_no_trace(
    gateway: tuple[httpx.AsyncClient, _CapturingPublisher],
) -> None:
    client, publisher = gateway

    caller = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}

    assert (await _post(client, caller)).status_code == 200

    assert "traceparent" not in publisher.published[0].headers
