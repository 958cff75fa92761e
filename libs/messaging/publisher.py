"""Publishing to JetStream behind a narrow port, so the relay can be tested without NATS."""

from __future__ import annotations

from typing import Protocol

from nats.js import JetStreamContext


class EventPublisher(Protocol):
    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> bool:
        """Store the event durably; True when the broker already had it (a duplicate)."""
        ...


class JetStreamPublisher:
    def __init__(self, js: JetStreamContext, *, timeout: float = 5.0) -> None:
        self._js = js
        self._timeout = timeout

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> bool:
        ack = await self._js.publish(subject, payload, timeout=self._timeout, headers=headers)
        return bool(ack.duplicate)
