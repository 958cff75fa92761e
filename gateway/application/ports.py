"""What receiving a webhook needs from the outside, as protocols (adapters in gateway/infrastructure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from gateway.domain.events import ProviderEvent

# What normalizing yields and its error are the domain's (the normalizers are pure): named here for callers.
from gateway.domain.normalization import MalformedWebhook, NormalizedWebhook
from libs.seedwork.shared_kernel import Provider

__all__ = [
    "EventSink",
    "MalformedWebhook",
    "NormalizedWebhook",
    "SignatureRejected",
    "WebhookNormalizer",
    "WebhookVerifier",
]


class SignatureRejected(Exception):
    """The webhook is not proven to come from the instance's provider: answered 401, never parsed.
    `cause` is a short label for the metric (missing, mismatch, expired, malformed, algorithm)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class WebhookVerifier(Protocol):
    def verify(
        self, provider: Provider, instance_id: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> None:
        """Return if the body was signed with the instance's webhook secret (constant-time comparison),
        else raise SignatureRejected. `headers` has lower-case names."""
        ...


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
