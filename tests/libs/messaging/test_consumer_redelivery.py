"""What a consumer does with a fetched batch when things fail: which events commit, which come back and
when, which are parked (no servers: stand-ins for JetStream's messages and the unit of work)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from nats.aio.client import Client as NATS
from sqlalchemy import exc as sa_exc

from libs.messaging import envelope
from libs.messaging.consumer import DurableConsumer, Redelivery
from libs.messaging.metrics import CONSUMER_PARKED
from libs.stores import Store as StoreRecord
from libs.stores import StoreKind, StoreOutages
from libs.testing.fakes import FakeUnitOfWork
from libs.testing.jetstream import meta
from whatlead.events.v1 import executor_events_pb2

SENT = executor_events_pb2.MessageSent.DESCRIPTOR.full_name


class FakeMsg:
    """A JetStream message as nats-py hands it over: what the consumer answered is recorded."""

    def __init__(self, event: executor_events_pb2.MessageSent, *, delivered: int = 1, seq: int = 1) -> None:
        self.event_id = event.meta.event_id
        self.headers = {envelope.TYPE_HEADER: SENT, envelope.MSG_ID_HEADER: self.event_id}
        self.data = event.SerializeToString()
        self.metadata = SimpleNamespace(num_delivered=delivered, sequence=SimpleNamespace(stream=seq))
        self.answers: list[str] = []
        self.nak_delays: list[float | None] = []
        self.heartbeats = 0

    async def ack(self) -> None:
        self.answers.append("ack")

    async def nak(self, delay: float | None = None) -> None:
        self.answers.append("nak")
        self.nak_delays.append(delay)

    async def term(self) -> None:
        self.answers.append("term")

    async def in_progress(self) -> None:
        self.heartbeats += 1


class FakeSubscription:
    def __init__(self, *batches: list[FakeMsg]) -> None:
        self._batches = list(batches)

    async def fetch(self, batch: int, timeout: float) -> list[FakeMsg]:
        if not self._batches:
            raise TimeoutError
        return self._batches.pop(0)


class Store:
    """What the handler wrote, visible only once its transaction committed."""

    def __init__(self) -> None:
        self.committed: list[str] = []
        self.calls: list[str] = []
        self.transactions = 0
        self.failing: set[str] = set()  # events whose handling raises
        self.outage = False  # every transaction fails as with the database gone
        self.pause = 0.0  # seconds each handler call takes

    def unit_of_work(self) -> StoreUnitOfWork:
        return StoreUnitOfWork(self)


class StoreUnitOfWork(FakeUnitOfWork):
    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.written: list[str] = []
        store.transactions += 1

    async def commit(self) -> None:
        await super().commit()
        self.store.committed += self.written


async def handler(event: Any, uow: StoreUnitOfWork) -> None:
    store = uow.store
    store.calls.append(event.meta.event_id)
    if store.pause:
        await asyncio.sleep(store.pause)
    if store.outage:
        refused = psycopg.OperationalError("connection refused")
        raise sa_exc.OperationalError("SELECT 1", {}, refused) from refused  # as SQLAlchemy raises it
    if event.meta.event_id in store.failing:
        raise ValueError("this event cannot be applied")
    uow.written.append(event.meta.event_id)


def consumer(
    store: Store, subscription: FakeSubscription, *, handler: Any = handler, **options: Any
) -> DurableConsumer:
    made = DurableConsumer(
        service="test",
        js=NATS().jetstream(),  # never connected: the subscription is set below
        subject_root="t",
        context="executor",
        durable="test-redelivery",
        handlers={executor_events_pb2.MessageSent: handler},
        uow_factory=store.unit_of_work,
        redelivery=Redelivery(ack_wait=3.0, retry_delay=0.5, max_deliveries=4),
        **options,
    )
    made._subscription = subscription  # type: ignore[assignment]
    return made


def messages(n: int, *, delivered: int = 1) -> list[FakeMsg]:
    return [
        FakeMsg(executor_events_pb2.MessageSent(meta=meta("org", f"intent-{i}")), delivered=delivered, seq=i)
        for i in range(n)
    ]


async def test_one_bad_event_in_a_batch_transaction_does_not_keep_the_others_from_committing() -> None:
    store = Store()
    batch = messages(32)
    bad = batch[21]
    store.failing.add(bad.event_id)

    acked = await consumer(store, FakeSubscription(batch), transaction_per_batch=True).process_batch()

    good = [msg for msg in batch if msg is not bad]
    assert acked == 31
    assert sorted(store.committed) == sorted(msg.event_id for msg in good)
    assert all(msg.answers == ["ack"] for msg in good)
    assert bad.answers == ["nak"] and bad.nak_delays == [0.5]  # retried alone, after the short delay
    # Split in halves until the bad one is alone, not one transaction per event (32 + 1 of them).
    assert store.transactions < len(batch) // 2


async def test_an_event_that_fails_on_its_last_delivery_is_parked_visibly_and_not_redelivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store()
    [bad] = messages(1, delivered=4)  # the consumer's max_deliveries
    store.failing.add(bad.event_id)
    parked = CONSUMER_PARKED.labels("test", "test-redelivery", SENT)
    before = parked._value.get()

    with caplog.at_level(logging.INFO, logger="libs.messaging.consumer"):
        await consumer(store, FakeSubscription([bad])).process_batch()

    assert bad.answers == ["term"]
    assert parked._value.get() == before + 1
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert [record.getMessage() for record in warnings] == [
        "event parked: it failed on each delivery and will not be redelivered"
    ]
    assert vars(warnings[0])["event_id"] == bad.event_id


async def test_an_event_that_fails_before_its_last_delivery_comes_back_after_the_delay() -> None:
    store = Store()
    [bad] = messages(1, delivered=3)
    store.failing.add(bad.event_id)

    await consumer(store, FakeSubscription([bad])).process_batch()

    assert bad.answers == ["nak"] and bad.nak_delays == [0.5]


async def test_a_store_outage_hands_the_whole_batch_back_without_splitting_it_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store()
    store.outage = True
    first, second, third = messages(6), messages(6), messages(6)
    outages = StoreOutages("test")
    outages.add(StoreRecord(StoreKind.POSTGRESQL, holds="notes", probe=lambda: asyncio.sleep(0)))
    consuming = consumer(
        store, FakeSubscription(first, second, third), transaction_per_batch=True, outages=outages
    )

    with caplog.at_level(logging.WARNING):
        assert await consuming.process_batch() == 0
        assert await consuming.process_batch() == 0
        store.outage = False
        assert await consuming.process_batch() == 6

    assert len(store.calls) == 1 + 1 + 6  # while down, one try per batch (it failed at once): no split
    assert all(msg.answers == ["nak"] and msg.nak_delays == [0.5] for msg in first + second)
    assert all(msg.answers == ["ack"] for msg in third)
    # One WARNING for the outage, from the service's store tracking; none per batch or per event.
    assert [record.getMessage() for record in caplog.records] == [
        "PostgreSQL unavailable: connection refused"
    ]
    assert not outages.serving


async def test_an_outage_met_one_event_at_a_time_hands_back_the_rest_of_the_batch_untried() -> None:
    store = Store()
    store.outage = True
    batch = messages(5)

    await consumer(store, FakeSubscription(batch)).process_batch()

    assert len(store.calls) == 1
    assert all(msg.answers == ["nak"] for msg in batch)


async def test_a_batch_that_outlasts_the_ack_wait_tells_jetstream_it_is_still_being_worked_on() -> None:
    store = Store()
    store.pause = 0.25
    batch = messages(2)
    consuming = consumer(store, FakeSubscription(batch))
    consuming._redelivery = Redelivery(ack_wait=0.3, retry_delay=0.5)  # heartbeats every 0.1 s

    await consuming.process_batch()  # 0.5 s of work, beyond the ack wait

    assert batch[1].heartbeats >= 1  # waited for the first, then was worked on itself
    beats = [msg.heartbeats for msg in batch]
    await asyncio.sleep(0.25)
    assert [msg.heartbeats for msg in batch] == beats  # nothing after the acks
    assert all(msg.answers == ["ack"] for msg in batch)


async def test_an_event_that_does_not_decode_is_parked_at_once() -> None:
    store = Store()
    [good] = messages(1)
    broken = FakeMsg(executor_events_pb2.MessageSent(meta=meta("org", "x")))
    broken.data = b"\xff\xff\xff"

    await consumer(store, FakeSubscription([broken, good]), transaction_per_batch=True).process_batch()

    assert broken.answers == ["term"]
    assert good.answers == ["ack"] and store.committed == [good.event_id]


class SentOfOneOrganization:
    """A handler that concerns itself with one organization's sends only."""

    def __init__(self, organization: str) -> None:
        self._organization = organization

    def concerns(self, event: Any) -> bool:
        return bool(event.meta.organization_id == self._organization)

    async def __call__(self, event: Any, uow: StoreUnitOfWork) -> None:
        await handler(event, uow)


async def test_events_a_selective_handler_does_not_concern_are_acked_without_a_transaction() -> None:
    store = Store()

    def sends(organization: str, n: int) -> list[FakeMsg]:
        return [FakeMsg(executor_events_pb2.MessageSent(meta=meta(organization, f"i-{i}"))) for i in range(n)]

    others = sends("other", 4)
    selective = consumer(
        store, FakeSubscription(others), transaction_per_batch=True, handler=SentOfOneOrganization("org")
    )

    assert await selective.process_batch() == 4
    assert store.transactions == 0 and store.calls == []  # no inbox row, no handler call
    assert all(msg.answers == ["ack"] for msg in others)

    mixed = sends("org", 3) + sends("other", 2)
    selective._subscription = FakeSubscription(mixed)  # type: ignore[assignment]
    assert await selective.process_batch() == 5
    assert store.transactions == 1
    assert sorted(store.committed) == sorted(msg.event_id for msg in mixed[:3])
    assert all(msg.answers == ["ack"] for msg in mixed)
