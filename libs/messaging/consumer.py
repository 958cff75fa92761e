"""Durable pull consumer: apply an event in the service's own transaction, then ack.

The inbox row is written in that same transaction, so a redelivery (crash before the ack, relay re-send
beyond JetStream's duplicate window) is recognised and acked without being applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from google.protobuf.message import Message
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from libs.messaging import envelope
from libs.messaging.metrics import CONSUMER_DUPLICATES, CONSUMER_FAILURES, CONSUMER_HANDLED, CONSUMER_IGNORED
from libs.seedwork.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

EventHandler = Callable[[Any, Any], Awaitable[None]]
"""`async def handle(event: <protobuf event>, uow: <the service's unit of work>) -> None`; must not commit."""


class DurableConsumer:
    def __init__(
        self,
        *,
        service: str,
        js: JetStreamContext,
        subject_root: str,
        context: str,
        durable: str,
        handlers: Mapping[type[Message], EventHandler],
        uow_factory: Callable[[], UnitOfWork],
        batch_size: int = 64,
        fetch_timeout: float = 1.0,
        ack_wait_seconds: float = 30.0,
        max_deliver: int = 50,
        retry_delay: float = 1.0,
        transaction_per_batch: bool = False,
    ) -> None:
        self._service = service
        self._js = js
        self._stream = envelope.stream_name(subject_root, context)
        self._filter = envelope.context_subjects(subject_root, context)
        self._durable = durable
        self._handlers = {cls.DESCRIPTOR.full_name: handler for cls, handler in handlers.items()}
        self._uow_factory = uow_factory
        self._batch_size = batch_size
        self._fetch_timeout = fetch_timeout
        self._config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait_seconds,
            max_deliver=max_deliver,
            max_ack_pending=batch_size * 4,
        )
        self._retry_delay = retry_delay
        # Opt-in for high-volume streams: a fetched batch is applied in one transaction (one commit
        # instead of one per event); if that fails, each event is applied on its own, as usual.
        self._transaction_per_batch = transaction_per_batch
        self._subscription: JetStreamContext.PullSubscription | None = None

    async def start(self) -> None:
        self._subscription = await self._js.pull_subscribe(
            self._filter, durable=self._durable, stream=self._stream, config=self._config
        )

    async def process_batch(self) -> int:
        """Fetch and handle one batch; returns how many messages were acked."""
        if self._subscription is None:
            await self.start()
        assert self._subscription is not None
        try:
            messages = await self._subscription.fetch(self._batch_size, timeout=self._fetch_timeout)
        except TimeoutError:  # nothing to fetch (nats-py raises both its own and asyncio's)
            return 0
        if self._transaction_per_batch and len(messages) > 1 and await self._handle_together(messages):
            for msg in messages:
                await msg.ack()
            return len(messages)
        acked = 0
        for msg in messages:
            if await self._handle(msg):
                await msg.ack()
                acked += 1
            else:
                await msg.nak(delay=self._retry_delay)
        return acked

    async def _handle_together(self, messages: list[Any]) -> bool:
        """Apply every message of a batch in one transaction; False (nothing applied) on any failure."""
        handled: list[str] = []
        duplicates = ignored = 0
        try:
            async with self._uow_factory() as uow:
                for msg in messages:
                    headers = msg.headers or {}
                    type_name = headers.get(envelope.TYPE_HEADER, "")
                    handler = self._handlers.get(type_name)
                    if handler is None:
                        ignored += 1
                        continue
                    event = envelope.decode(type_name, msg.data)
                    event_id = event.meta.event_id or headers.get(envelope.MSG_ID_HEADER, "")
                    if not await uow.first_time(self._durable, event_id):
                        duplicates += 1
                        continue
                    await handler(event, uow)
                    handled.append(type_name)
                await uow.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("batch transaction failed; applying one by one", extra={"error": type(exc).__name__})
            return False
        if ignored:
            CONSUMER_IGNORED.labels(self._service, self._durable).inc(ignored)
        if duplicates:
            CONSUMER_DUPLICATES.labels(self._service, self._durable).inc(duplicates)
        for type_name in handled:
            CONSUMER_HANDLED.labels(self._service, self._durable, type_name).inc()
        return True

    async def _handle(self, msg: Any) -> bool:
        headers = msg.headers or {}
        type_name = headers.get(envelope.TYPE_HEADER, "")
        handler = self._handlers.get(type_name)
        if handler is None:
            CONSUMER_IGNORED.labels(self._service, self._durable).inc()
            return True
        try:
            event = envelope.decode(type_name, msg.data)
            # The id inside the event, not the header: a re-publication may carry another message id.
            event_id = event.meta.event_id or headers.get(envelope.MSG_ID_HEADER, "")
            async with self._uow_factory() as uow:
                if not await uow.first_time(self._durable, event_id):
                    CONSUMER_DUPLICATES.labels(self._service, self._durable).inc()
                    return True
                await handler(event, uow)
                await uow.commit()
        except asyncio.CancelledError:
            raise
        except Exception:
            CONSUMER_FAILURES.labels(self._service, self._durable).inc()
            log.exception("event handler failed; will be redelivered", extra={"event_type": type_name})
            return False
        CONSUMER_HANDLED.labels(self._service, self._durable, type_name).inc()
        return True

    async def stop(self) -> None:
        """Stop pulling. Without it, draining the NATS connection at shutdown waits for the pull
        subscription until the drain timeout (30 s)."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.process_batch()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # NATS away: the client reconnects by itself, we just wait
                    log.warning(
                        "consumer fetch failed",
                        extra={"consumer": self._durable, "error": type(exc).__name__},
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
        finally:
            await self.stop()
