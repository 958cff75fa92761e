"""Durable pull consumer: apply an event in the service's own transaction, then ack.

The inbox row is written in that same transaction, so a redelivery (crash before the ack, relay re-send
beyond JetStream's duplicate window) is recognised and acked without being applied twice.

Redelivery within seconds (ADR 0030): the ack wait is short (what a consumer that died had fetched comes
back that soon), a batch still being applied sends progress heartbeats so it is never handed on meanwhile,
a failed event is nak'ed with a short delay, a batch whose transaction fails because of one event is split
until the others commit, and an event that keeps failing on its own is parked (terminated, one WARNING, a
metric; it stays in the stream) after a bounded number of deliveries. A store outage fails every event
alike (`libs.stores.outage_of`): the batch is handed back whole, after a pause, never split, and the
outage is reported to the service's `StoreOutages` (logged once per outage, ADR 0009).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from google.protobuf.message import Message
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from libs import tracing
from libs.config import ConsumingServiceSettings
from libs.messaging import envelope
from libs.messaging.metrics import (
    CONSUMER_DUPLICATES,
    CONSUMER_FAILURES,
    CONSUMER_HANDLED,
    CONSUMER_IGNORED,
    CONSUMER_OUTAGES,
    CONSUMER_PARKED,
    report_consumer_lag,
)
from libs.messaging.tracing import start_consuming
from libs.periodic import run_periodically
from libs.seedwork.unit_of_work import InboxUnitOfWork
from libs.stores import StoreOutages, outage_of

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
class SelectiveHandler(Protocol):
    """A handler that uses only some events of its type (by their content): the others are acked without
    a transaction or an inbox row, as a type no handler uses is. Applying them would change nothing."""

    def concerns(self, event: Any) -> bool: ...


@runtime_checkable
class BatchInbox(Protocol):
    """A unit of work that records many inbox rows in one statement."""

    async def first_times(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        """Record that `consumer` handles these events in this transaction; returns the ids it had not
        handled before."""
        ...


@dataclass(frozen=True)
class Redelivery:
    """When a fetched event comes back (ADR 0030).

    `ack_wait`: seconds JetStream waits for an ack before handing the event to another fetch (a consumer
    that died); a batch still being applied sends a progress heartbeat every third of it. `retry_delay`:
    seconds before a failed event (or a batch that met a store outage) comes back. `max_deliveries`: the
    delivery on which an event that fails on its own is parked instead of retried.
    """

    ack_wait: float = 3.0
    retry_delay: float = 1.0
    max_deliveries: int = 10

    def __post_init__(self) -> None:
        if self.ack_wait <= 0 or self.retry_delay <= 0 or self.max_deliveries < 2:
            raise ValueError("ack_wait and retry_delay must be positive, max_deliveries at least 2")

    @property
    def heartbeat(self) -> float:
        return self.ack_wait / 3

    @classmethod
    def of(cls, settings: ConsumingServiceSettings, context: str) -> Redelivery:
        """The service's settings for its consumer of `context`'s stream."""
        return cls(
            ack_wait=settings.consumer_ack_wait(context),
            retry_delay=settings.consumer_retry_delay_seconds,
            max_deliveries=settings.consumer_max_deliveries,
        )


class _StoreOutage(Exception):
    """Raised through the splitting: the rest of the batch is handed back whole."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(type(error).__name__)
        self.error = error


@dataclass
class _Delivery:
    """A fetched message of a type this consumer handles, decoded."""

    msg: Any
    type_name: str
    event_id: str
    event: Message


class _InFlight:
    """The messages of one fetch until each is acked, nak'ed or terminated; the unsettled ones get a
    progress heartbeat while the batch is worked on."""

    def __init__(self, messages: list[Any]) -> None:
        self.messages = messages
        self._settled: set[int] = set()

    def unsettled(self) -> list[Any]:
        return [msg for msg in self.messages if id(msg) not in self._settled]

    async def ack(self, messages: Sequence[Any]) -> None:
        self._settled.update(map(id, messages))
        # One after the other, not gathered: an ack only queues a publish on the connection, and a task
        # per message cost more than the acks themselves (about 7% of a batch's CPU in the ingest bench).
        for msg in messages:
            await msg.ack()

    async def nak(self, messages: Sequence[Any], delay: float) -> None:
        self._settled.update(map(id, messages))
        await asyncio.gather(*(msg.nak(delay=delay) for msg in messages))

    async def term(self, msg: Any) -> None:
        self._settled.add(id(msg))
        await msg.term()


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
        redelivery: Redelivery = Redelivery(),
        transaction_per_batch: bool = False,
        linger: float = 0.0,
        outages: StoreOutages | None = None,
        lag_interval: float = 10.0,
    ) -> None:
        self._service = service
        self._lag_interval = lag_interval
        self._js = js
        self._stream = envelope.stream_name(subject_root, context)
        self._filter = envelope.context_events(subject_root, context)
        self._durable = durable
        self._handlers = {cls.DESCRIPTOR.full_name: handler for cls, handler in handlers.items()}
        # Checked once here: isinstance against a runtime protocol is too slow to ask per message.
        self._concerns: dict[str, Callable[[Any], bool]] = {}
        for name, handler in self._handlers.items():
            if isinstance(handler, SelectiveHandler):
                self._concerns[name] = handler.concerns
        self._uow_factory = uow_factory
        self._batch_size = batch_size
        self._fetch_timeout = fetch_timeout
        self._redelivery = redelivery
        self._config = ConsumerConfig(
            name=durable,
            durable_name=durable,
            filter_subject=self._filter,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=redelivery.ack_wait,
            # JetStream never gives up on its own (it would drop the event silently): the consumer parks
            # an event that keeps failing, visibly, after `max_deliveries`.
            max_deliver=-1,
            max_ack_pending=batch_size * 4,
        )
        # Opt-in for high-volume streams: a fetched batch is applied in one transaction (one commit
        # instead of one per event); if that fails because of some event, the batch is split until the
        # others commit and the failing one is retried alone.
        self._transaction_per_batch = transaction_per_batch
        # Opt-in for streams off a message's path (delivery reports, status projections): after a fetch
        # that did not fill the batch, keep fetching up to `linger` seconds, so a quiet stream's events are
        # applied a few per transaction instead of one each. Never for events someone waits on.
        self._linger = linger
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._outages = outages or StoreOutages(service)
        self._store_down = False  # a batch met a store outage and none has committed since: fetches pause

    async def start(self) -> None:
        """Create the durable consumer, or bring an existing one's settings (ack wait, limits) up to date:
        JetStream keeps a durable's config from its creation, so a new ack wait needs an update."""
        try:
            await self._js.add_consumer(self._stream, config=self._config)
        except Exception as exc:  # e.g. a change JetStream refuses: keep consuming with the old settings
            await self._js.consumer_info(self._stream, self._durable)  # none at all: fails, start again later
            log.warning(
                "could not create or update the consumer; using it as it is",
                extra={"consumer": self._durable, "error": type(exc).__name__},
            )
        self._subscription = await self._js.pull_subscribe_bind(durable=self._durable, stream=self._stream)

    async def process_batch(self) -> int:
        """Fetch and handle one batch; returns how many messages were acked."""
        if self._subscription is None:
            await self.start()
        assert self._subscription is not None
        try:
            messages = await self._subscription.fetch(self._batch_size, timeout=self._fetch_timeout)
        except TimeoutError:  # nothing to fetch (nats-py raises both its own and asyncio's)
            return 0
        in_flight = _InFlight(messages)
        async with self._heartbeats(in_flight):
            if self._linger and len(messages) < self._batch_size:
                messages.extend(await self._more(self._batch_size - len(messages)))
            return await self._handle(in_flight)

    @contextlib.asynccontextmanager
    async def _heartbeats(self, in_flight: _InFlight) -> AsyncIterator[None]:
        """Tell JetStream the batch is being worked on, so a long one is not redelivered meanwhile."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(self._redelivery.heartbeat)
                with contextlib.suppress(Exception):  # NATS away: the ack wait decides, as after a crash
                    await asyncio.gather(*(msg.in_progress() for msg in in_flight.unsettled()))

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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

    async def _handle(self, in_flight: _InFlight) -> int:
        deliveries: list[_Delivery] = []
        ignored: list[Any] = []
        for msg in in_flight.messages:
            headers = msg.headers or {}
            type_name = headers.get(envelope.TYPE_HEADER, "")
            if type_name not in self._handlers:
                ignored.append(msg)
                continue
            try:
                delivery = self._decode(msg)
            except Exception as exc:  # it will never decode: retrying cannot help
                await self._park(in_flight, msg, type_name, headers.get(envelope.MSG_ID_HEADER, ""), exc)
                continue
            concerns = self._concerns.get(type_name)
            if concerns is not None and not concerns(delivery.event):
                ignored.append(msg)
            else:
                deliveries.append(delivery)
        if ignored:
            CONSUMER_IGNORED.labels(self._service, self._durable).inc(len(ignored))
            await in_flight.ack(ignored)
        acked = len(ignored)
        groups = [deliveries] if self._transaction_per_batch else [[delivery] for delivery in deliveries]
        try:
            for group in groups:
                if group:
                    acked += await self._apply_isolating(in_flight, group)
        except _StoreOutage as outage:
            CONSUMER_OUTAGES.labels(self._service, self._durable).inc()
            self._outages.report(outage.error)  # logged once per outage, for the whole service
            self._store_down = True
            await in_flight.nak(in_flight.unsettled(), self._redelivery.retry_delay)
        return acked

    @staticmethod
    def _decode(msg: Any) -> _Delivery:
        headers = msg.headers or {}
        type_name = headers.get(envelope.TYPE_HEADER, "")
        event = envelope.decode(type_name, msg.data)
        # The id inside the event, not the header: a re-publication may carry another message id.
        meta = envelope.meta_of(event)
        event_id = (meta.event_id if meta else "") or headers.get(envelope.MSG_ID_HEADER, "")
        return _Delivery(msg, type_name, event_id, event)

    async def _apply_isolating(self, in_flight: _InFlight, batch: list[_Delivery]) -> int:
        """Apply `batch` in one transaction; if it fails because of an event, apply its halves apart, so
        every event but the failing ones commits. Returns how many were acked."""
        error = await self._apply(batch)
        if error is None:
            await in_flight.ack([delivery.msg for delivery in batch])
            return len(batch)
        if outage_of(error) is not None:  # every event would fail alike: splitting only adds load
            raise _StoreOutage(error)
        if len(batch) == 1:
            await self._failed(in_flight, batch[0], error)
            return 0
        half = len(batch) // 2
        log.debug("batch transaction failed; applying its halves apart", extra={"consumer": self._durable})
        return await self._apply_isolating(in_flight, batch[:half]) + await self._apply_isolating(
            in_flight, batch[half:]
        )

    async def _apply(self, batch: Sequence[_Delivery]) -> BaseException | None:
        """Apply the events in one transaction (their inbox rows, their handlers, one commit); None when
        committed, else the error (nothing was applied)."""
        fresh: list[tuple[str, Message]] = []
        consuming = self._consuming(batch)
        try:
            async with self._uow_factory() as uow:
                first = await self._first_times(uow, [delivery.event_id for delivery in batch])
                for delivery in batch:
                    if delivery.event_id in first:
                        first.discard(delivery.event_id)  # the same event twice in one batch: applied once
                        fresh.append((delivery.type_name, delivery.event))
                with consuming.applying():  # what the handlers write to the outbox continues each trace
                    await self._dispatch(fresh, uow)
                    await uow.commit()
        except asyncio.CancelledError as exc:
            consuming.end(exc)
            raise
        except Exception as exc:
            consuming.end(exc)
            return exc
        consuming.end()
        self._store_down = False
        if len(batch) > len(fresh):
            CONSUMER_DUPLICATES.labels(self._service, self._durable).inc(len(batch) - len(fresh))
        for type_name, _ in fresh:
            CONSUMER_HANDLED.labels(self._service, self._durable, type_name).inc()
        return None

    def _consuming(self, batch: Sequence[_Delivery]) -> tracing.Consuming:
        """A CONSUMER span per event of the transaction (none when tracing is off)."""
        consuming = tracing.Consuming()
        if tracing.enabled():
            for delivery in batch:
                meta = envelope.meta_of(delivery.event)
                start_consuming(
                    consuming,
                    service=self._service,
                    consumer=self._durable,
                    type_name=delivery.type_name,
                    event_id=delivery.event_id,
                    headers=delivery.msg.headers,
                    correlation_id=(meta.correlation_id or meta.aggregate_id) if meta else "",
                    organization_id=meta.organization_id if meta else "",
                )
        return consuming

    async def _failed(self, in_flight: _InFlight, delivery: _Delivery, error: BaseException) -> None:
        """An event failed in a transaction of its own: retried after a delay, or parked once it has had
        its deliveries."""
        CONSUMER_FAILURES.labels(self._service, self._durable).inc()
        deliveries = _deliveries(delivery.msg)
        if deliveries >= self._redelivery.max_deliveries:
            await self._park(in_flight, delivery.msg, delivery.type_name, delivery.event_id, error)
            return
        details = {
            "consumer": self._durable,
            "event_type": delivery.type_name,
            "event_id": delivery.event_id,
            "deliveries": deliveries,
            "error": type(error).__name__,
        }
        if deliveries <= 1:  # the traceback once per event, not once per retry
            log.warning("event handler failed; will be redelivered", extra=details, exc_info=error)
        else:
            log.info("event handler failed again; will be redelivered", extra=details)
        await in_flight.nak([delivery.msg], self._redelivery.retry_delay)

    async def _park(
        self, in_flight: _InFlight, msg: Any, type_name: str, event_id: str, error: BaseException
    ) -> None:
        """Stop redelivering an event that cannot be applied. It stays in the stream (by its sequence) for
        whoever mends the cause and replays it."""
        await in_flight.term(msg)
        CONSUMER_PARKED.labels(self._service, self._durable, type_name).inc()
        log.warning(
            "event parked: it failed on each delivery and will not be redelivered",
            extra={
                "consumer": self._durable,
                "event_type": type_name,
                "event_id": event_id,
                "deliveries": _deliveries(msg),
                "stream_sequence": _stream_sequence(msg),
                "error": type(error).__name__,
            },
        )

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

    async def report_lag(self) -> None:
        """Sets the lag gauges from JetStream's consumer info: what the durable has not been delivered yet,
        and what it was delivered and has not acked."""
        info = await self._js.consumer_info(self._stream, self._durable)
        report_consumer_lag(self._service, self._durable, info.num_pending or 0, info.num_ack_pending or 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop`; beside it, report the lag every `lag_interval` seconds."""
        lag = asyncio.create_task(
            run_periodically(
                stop,
                self.report_lag,
                every=self._lag_interval,
                name="consumer lag check",
                outages=self._outages,
                log=log,
            )
        )
        try:
            await self._consume_until(stop)
        finally:
            lag.cancel()

    async def _consume_until(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.process_batch()
                    if self._store_down:  # what was fetched went back; give the store a moment
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), timeout=self._redelivery.retry_delay)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # NATS away: the client reconnects by itself, we just wait
                    if self._outages.report(exc) is None:  # an outage is logged once, not once a fetch
                        log.warning(
                            "consumer fetch failed",
                            extra={"consumer": self._durable, "error": type(exc).__name__},
                        )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
        finally:
            await self.stop()


def _deliveries(msg: Any) -> int:
    """How many times JetStream has delivered this message (1 on the first)."""
    try:
        return int(msg.metadata.num_delivered)
    except Exception:  # not a JetStream message (tests' stand-ins without metadata)
        return 1


def _stream_sequence(msg: Any) -> int | None:
    try:
        return int(msg.metadata.sequence.stream)
    except Exception:
        return None
