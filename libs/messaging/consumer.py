"""Durable pull consumer: apply an event in the service's own transaction, then ack.

The inbox row is written in that same transaction, so a redelivery (crash before the ack, relay re-send
beyond JetStream's duplicate window) is recognised and acked without being applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from google.protobuf.message import Message
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from libs.messaging import envelope
from libs.messaging.metrics import CONSUMER_DUPLICATES, CONSUMER_FAILURES, CONSUMER_HANDLED, CONSUMER_IGNORED
from libs.seedwork.unit_of_work import InboxUnitOfWork

log = logging.getLogger(__name__)

EventHandler = Callable[[Any, Any], Awaitable[None]]
"""`async def handle(event: <protobuf event>, uow: <the service's unit of work>) -> None`; must not commit."""


@runtime_checkable
class BatchEventHandler(Protocol):
    """A handler that can also apply several events of its type at once (fewer queries per event)."""

    async def __call__(self, event: Any, uow: Any) -> None: ...

    async def handle_many(self, events: Sequence[Any], uow: Any) -> None:
        """Same effect as calling the handler on each event in order; must not commit."""
        ...


@runtime_checkable
class BatchInbox(Protocol):
    """A unit of work that records many inbox rows in one statement."""

    async def first_times(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        """Record that `consumer` handles these events in this transaction; returns the ids it had not
        handled before."""
        ...


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
        uow_factory: Callable[[], InboxUnitOfWork],
        batch_size: int = 64,
        fetch_timeout: float = 1.0,
        ack_wait_seconds: float = 30.0,
        max_deliver: int = 50,
        retry_delay: float = 1.0,
        transaction_per_batch: bool = False,
        linger: float = 0.0,
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
        # Opt-in for streams off a message's path (delivery reports, status projections): after a fetch
        # that did not fill the batch, keep fetching up to `linger` seconds, so a quiet stream's events are
        # applied a few per transaction instead of one each. Never for events someone waits on.
        self._linger = linger
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
        if self._linger and len(messages) < self._batch_size:
            messages += await self._more(self._batch_size - len(messages))
        if self._transaction_per_batch and len(messages) > 1 and await self._apply(messages):
            await asyncio.gather(*(msg.ack() for msg in messages))
            return len(messages)
        acked = 0
        for msg in messages:
            if await self._apply([msg]):
                await msg.ack()
                acked += 1
            else:
                await msg.nak(delay=self._retry_delay)
        return acked

    async def _more(self, wanted: int) -> list[Any]:
        """Up to `wanted` more messages arriving within `linger` seconds."""
        assert self._subscription is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._linger
        more: list[Any] = []
        while len(more) < wanted and (left := deadline - loop.time()) > 0.001:
            try:
                more += await self._subscription.fetch(wanted - len(more), timeout=left)
            except TimeoutError:
                break
        return more

    async def _apply(self, messages: Sequence[Any]) -> bool:
        """Apply messages in one transaction (their inbox rows, their handlers, one commit); True when
        committed (or there was nothing of ours to apply), False when nothing was applied."""
        events: list[tuple[str, str, Message]] = []  # (type, event id, event), in stream order
        ignored = 0
        type_name = ""
        try:
            for msg in messages:
                headers = msg.headers or {}
                type_name = headers.get(envelope.TYPE_HEADER, "")
                if type_name not in self._handlers:
                    ignored += 1
                    continue
                event = envelope.decode(type_name, msg.data)
                # The id inside the event, not the header: a re-publication may carry another message id.
                meta = envelope.meta_of(event)
                event_id = (meta.event_id if meta else "") or headers.get(envelope.MSG_ID_HEADER, "")
                events.append((type_name, event_id, event))
            fresh: list[tuple[str, Message]] = []
            if events:
                async with self._uow_factory() as uow:
                    first = await self._first_times(uow, [event_id for _, event_id, _ in events])
                    for type_name, event_id, event in events:
                        if event_id in first:
                            first.discard(event_id)  # the same event twice in one batch: applied once
                            fresh.append((type_name, event))
                    await self._dispatch(fresh, uow)
                    await uow.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if len(messages) > 1:
                log.info("batch transaction failed; applying one by one", extra={"error": type(exc).__name__})
            else:
                CONSUMER_FAILURES.labels(self._service, self._durable).inc()
                log.exception("event handler failed; will be redelivered", extra={"event_type": type_name})
            return False
        if ignored:
            CONSUMER_IGNORED.labels(self._service, self._durable).inc(ignored)
        if len(events) > len(fresh):
            CONSUMER_DUPLICATES.labels(self._service, self._durable).inc(len(events) - len(fresh))
        for type_name, _ in fresh:
            CONSUMER_HANDLED.labels(self._service, self._durable, type_name).inc()
        return True

    async def _first_times(self, uow: InboxUnitOfWork, event_ids: list[str]) -> set[str]:
        """The ids this consumer has not applied yet, their inbox rows written in this transaction."""
        if isinstance(uow, BatchInbox):
            return await uow.first_times(self._durable, event_ids)
        return {event_id for event_id in event_ids if await uow.first_time(self._durable, event_id)}

    async def _dispatch(self, events: list[tuple[str, Message]], uow: InboxUnitOfWork) -> None:
        """Each run of consecutive events with one handler goes to it, in one call when it takes many (a
        handler registered for several types gets their mixed run, still in stream order)."""
        for handler, run in itertools.groupby(events, key=lambda typed: self._handlers[typed[0]]):
            batch = [event for _, event in run]
            if len(batch) > 1 and isinstance(handler, BatchEventHandler):
                await handler.handle_many(batch, uow)
            else:
                for event in batch:
                    await handler(event, uow)

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
