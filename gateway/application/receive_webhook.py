"""Receive one webhook: prove it comes from the instance's provider, turn it into canonical events, and
have them durably stored before anyone answers the provider.

Verification comes first and sees only the raw bytes: nothing of an unproven body is parsed. The events
are published with their dedup keys as message ids, so a provider's retry (or a webhook sent twice on
purpose, as TurboZap does) stores each fact once. The use case returns only once JetStream acknowledged
every event; when it cannot, the sink raises and the webhook is answered 503, and the provider retries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.application.ports import EventSink, WebhookNormalizer, WebhookVerifier
from gateway.domain.events import ProviderEvent
from libs.seedwork.clock import Clock
from libs.seedwork.shared_kernel import Provider


@dataclass(frozen=True)
class ReceiveWebhook:
    """One POST as it arrived: `instance_id` from the URL, `headers` with lower-case names, `body` raw."""

    provider: Provider
    instance_id: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class WebhookReceived:
    """What was stored: the events, how many JetStream already had (a retry), and the provider's event
    types WhatLead does not use (accepted, counted)."""

    events: Sequence[ProviderEvent]
    duplicates: int
    ignored_types: Sequence[str]


class ReceiveWebhookHandler:
    def __init__(
        self, verifier: WebhookVerifier, normalizer: WebhookNormalizer, sink: EventSink, clock: Clock
    ) -> None:
        self._verifier = verifier
        self._normalizer = normalizer
        self._sink = sink
        self._clock = clock

    async def __call__(self, command: ReceiveWebhook) -> WebhookReceived:
        """Raises SignatureRejected (401), MalformedWebhook (400), or whatever the sink raises when the
        events could not be stored (503)."""
        self._verifier.verify(
            command.provider, command.instance_id, command.headers, command.body, self._clock.now()
        )
        normalized = self._normalizer.normalize(
            command.provider, command.instance_id, command.headers, command.body
        )
        duplicates = await self._sink.publish(normalized.events) if normalized.events else []
        return WebhookReceived(
            events=tuple(normalized.events),
            duplicates=sum(duplicates),
            ignored_types=tuple(normalized.ignored_types),
        )
