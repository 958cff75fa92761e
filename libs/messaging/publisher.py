"""Publishing to JetStream behind a narrow port, so the relay can be tested without NATS."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import PubAck


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    subject: str
    payload: bytes
    headers: dict[str, str]


class EventPublisher(Protocol):
    async def publish_all(self, events: Sequence[OutgoingEvent]) -> list[bool]:
        """Store every event durably, in the given order; for each, True when the broker already had it (a
        duplicate). Raises if any of them was not stored: the caller publishes them all again."""
        ...


class JetStreamPublisher:
    def __init__(self, js: JetStreamContext, *, timeout: float = 5.0, max_payload: int | None = None) -> None:
        self._js = js
        self._timeout = timeout
        # The server's limit (the connection's max_payload), checked here: nats-py refuses a larger event
        # only after it registered its ack, which is then never released (one in-flight slot lost per try).
        self._max_payload = max_payload

    async def publish_all(self, events: Sequence[OutgoingEvent]) -> list[bool]:
        # Sent back to back on one connection (so the stream stores them in this order), then one wait for
        # all the acks: a request per event would cost a reply subscription, a timer and a task each.
        if self._max_payload is not None and any(len(e.payload) > self._max_payload for e in events):
            raise nats.errors.MaxPayloadError
        acks: list[asyncio.Future[PubAck]] = []
        try:
            for event in events:
                acks.append(await self._js.publish_async(event.subject, event.payload, headers=event.headers))
            try:
                stored = await asyncio.wait_for(asyncio.gather(*acks), self._timeout)
            except TimeoutError:  # as NATS's own: JetStream did not answer, an outage (libs.stores)
                raise nats.errors.TimeoutError from None
        finally:
            for ack in acks:
                ack.cancel()  # after a failure, stop waiting: a pending ack holds one of the client's slots
        return [bool(ack.duplicate) for ack in stored]
