"""The outbox relay while its database or NATS is away: the outage is logged once, not once per pass."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import nats.errors
import psycopg
from sqlalchemy.ext.asyncio import async_sessionmaker

from libs.messaging.publisher import OutgoingEvent
from libs.messaging.relay import OutboxRelay
from libs.seedwork.clock import FakeClock
from libs.stores import Store, StoreKind, StoreOutages
from libs.testing.waiting import eventually
from tests.libs.notes.tables import messaging


class NoPublisher:
    async def publish_all(self, events: Sequence[OutgoingEvent]) -> list[bool]:
        raise AssertionError("nothing is published in these tests")


class RelayOnAStoreThatFails(OutboxRelay):
    """Every pass fails with `error`, as it would with the store away."""

    def __init__(self, error: Exception, outages: StoreOutages) -> None:
        super().__init__(
            service="relay-test",
            sessions=async_sessionmaker(),  # never opened: every pass fails first
            outbox=messaging.outbox,
            publisher=NoPublisher(),
            subject_root="t",
            clock=FakeClock(),
            outages=outages,
            max_backoff=0.001,
        )
        self.error = error
        self.passes = 0

    async def publish_pending(self) -> int:
        self.passes += 1
        raise self.error

    async def report_backlog(self) -> None:  # the same store: the same outage
        raise self.error


async def still_down() -> None:
    raise ConnectionRefusedError


async def run_passes(error: Exception, passes: int) -> None:
    outages = StoreOutages("relay-test")
    outages.add(Store(StoreKind.POSTGRESQL, holds="notes", probe=still_down))
    outages.add(Store(StoreKind.NATS, holds="events", probe=still_down, essential=False))
    relay = RelayOnAStoreThatFails(error, outages)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))

    async def enough() -> bool:
        return relay.passes >= passes

    await eventually(enough)
    stop.set()
    await running


async def test_a_database_outage_is_logged_once_across_failed_passes(caplog):
    await run_passes(psycopg.OperationalError("connection failed: Connection refused"), passes=20)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "PostgreSQL unavailable: connection failed: Connection refused"
    ]


async def test_jetstream_not_acknowledging_is_a_nats_outage_logged_once(caplog):
    await run_passes(nats.errors.TimeoutError(), passes=20)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("NATS unavailable")


async def test_any_other_failure_is_still_logged_at_each_pass(caplog):
    await run_passes(ValueError("a bug"), passes=3)
    assert len([r for r in caplog.records if r.getMessage() == "outbox relay pass failed, retrying"]) >= 3
