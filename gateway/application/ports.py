"""What receiving a webhook needs from the outside, as protocols (adapters in gateway/infrastructure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gateway.domain.events import ProviderEvent
from libs.seedwork.shared_kernel import Provider


class SignatureRejected(Exception):
    """The webhook is not proven to come from the instance's provider: answered 401, never parsed.
    `cause` is a short label for the metric (missing, mismatch, expired, malformed, algorithm)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class MalformedWebhook(Exception):
    """A verified body that is not the JSON (or form) the provider sends: answered 400."""


class WebhookVerifier(Protocol):
    def verify(
        self, provider: Provider, instance_id: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> None:
        """Return if the body was signed with the instance's webhook secret (constant-time comparison),
        else raise SignatureRejected. `headers` has lower-case names."""
        ...


@dataclass(frozen=True)
class NormalizedWebhook:
    """The canonical events of one webhook, and the provider's event types it carried that WhatLead does
    not use (answered 2xx and counted, never an error)."""

    events: Sequence[ProviderEvent]
    ignored_types: Sequence[str] = field(default_factory=tuple)


class WebhookNormalizer(Protocol):
    def normalize(
        self, provider: Provider, instance_id: str, headers: Mapping[str, str], body: bytes
    ) -> NormalizedWebhook:
        """The body's canonical events; raises MalformedWebhook for a body that does not parse."""
        ...


class EventSink(Protocol):
    async def publish(self, events: Sequence[ProviderEvent]) -> list[bool]:
        """Publish every event durably (returns once JetStream acknowledged each one), with its dedup key
        as the message id; for each, True when JetStream already had it. Raises when NATS cannot take
        them (the webhook is then answered 503 and the provider retries)."""
        ...
