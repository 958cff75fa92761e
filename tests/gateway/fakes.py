"""Hand-written fakes of the gateway's ports, and webhooks signed the way the fake verifier checks them."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import nats.errors

from gateway.application.ports import MalformedWebhook, NormalizedWebhook, SignatureRejected
from gateway.domain.events import ProviderEvent, ProviderEventKind
from libs.seedwork.shared_kernel import Provider
from libs.webhooks import webhook_secret

MASTER_KEY = b"test-master-key-0123456789abcdef0123456789"
SIGNATURE_HEADER = "x-fake-signature"


def sign(instance_id: str, body: bytes, master_key: bytes = MASTER_KEY) -> str:
    return hmac.new(webhook_secret(master_key, instance_id).encode(), body, hashlib.sha512).hexdigest()


class FakeVerifier:
    """Every provider signs like WAHA here: hex HMAC-SHA512 of the raw body with the instance's secret.
    Records what it saw, so a test can tell that nothing was parsed before it."""

    def __init__(self, master_key: bytes = MASTER_KEY) -> None:
        self._master_key = master_key
        self.calls = 0

    def verify(
        self, provider: Provider, instance_id: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> None:
        self.calls += 1
        signature = headers.get(SIGNATURE_HEADER)
        if signature is None:
            raise SignatureRejected("missing")
        if not hmac.compare_digest(signature, sign(instance_id, body, self._master_key)):
            raise SignatureRejected("mismatch")


class FakeNormalizer:
    """Reads a test shape: {"events": [{"kind": ..., "message_id": ..., "event_id": ...}], "ignored": [...]}
    (JSON, or wuzapi's form with the JSON in `jsonData`)."""

    def __init__(self) -> None:
        self.calls = 0

    def normalize(
        self, provider: Provider, instance_id: str, headers: Mapping[str, str], body: bytes
    ) -> NormalizedWebhook:
        self.calls += 1
        try:
            if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                from urllib.parse import parse_qs

                body = parse_qs(body.decode())["jsonData"][0].encode()
            document = json.loads(body)
            events = [
                ProviderEvent(
                    kind=ProviderEventKind(item["kind"]),
                    provider=provider,
                    instance_id=instance_id,
                    provider_instance_ref="session-1",
                    occurred_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
                    provider_event_id=item.get("event_id", ""),
                    provider_message_id=item.get("message_id", ""),
                    from_me=True,
                )
                for item in document.get("events", [])
            ]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedWebhook from exc
        return NormalizedWebhook(tuple(events), tuple(document.get("ignored", ())))


class FakeEventSink:
    """Stores events by dedup key, as JetStream's de-duplication does; `down` makes it fail as NATS does
    while disconnected, `broken` as a bug would."""

    def __init__(self) -> None:
        self.stored: dict[str, ProviderEvent] = {}
        self.down = False
        self.broken = False

    async def publish(self, events: Sequence[ProviderEvent]) -> list[bool]:
        if self.down:
            raise nats.errors.ConnectionReconnectingError
        if self.broken:
            raise RuntimeError("a bug")
        duplicates = [event.dedup_key in self.stored for event in events]
        self.stored.update((event.dedup_key, event) for event in events)
        return duplicates


def webhook(*events: dict[str, Any], ignored: Sequence[str] = ()) -> bytes:
    return json.dumps({"events": list(events), "ignored": list(ignored)}).encode()
