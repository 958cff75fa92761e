"""Telling store outages from other failures, and tracking each outage: one WARNING when it starts, one INFO
when a probe sees the store back, the service's serving state in between (fakes, no servers)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import nats.errors
import psycopg
import pytest
import redis.exceptions
import sqlalchemy.exc
from prometheus_client import REGISTRY

from libs.stores import Store, StoreKind, StoreOutages, outage_of
from libs.testing.waiting import eventually

PG, REDIS, NATS = StoreKind.POSTGRESQL, StoreKind.REDIS, StoreKind.NATS
SQL = "UPDATE intents SET phone = %(phone)s"
PARAMS = {"phone": "5511999990000"}


def raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    """`exc` as it arrives from a `raise exc from cause`, its chain filled in."""
    try:
        raise exc from cause
    except BaseException as caught:
        return caught


def refused() -> psycopg.OperationalError:
    return psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?"
    )


OUTAGES = [
    pytest.param(refused(), PG, id="psycopg connection refused"),
    pytest.param(
        raised(sqlalchemy.exc.OperationalError(SQL, PARAMS, refused()), refused()), PG, id="sqlalchemy wrap"
    ),
    pytest.param(psycopg.errors.AdminShutdown("terminating connection"), PG, id="server shutting down"),
    pytest.param(psycopg.errors.CannotConnectNow("the database system is starting up"), PG, id="starting"),
    pytest.param(psycopg.errors.TooManyConnections("too many clients"), PG, id="too many connections"),
    pytest.param(
        sqlalchemy.exc.DBAPIError(SQL, PARAMS, Exception("gone"), connection_invalidated=True),
        PG,
        id="connection invalidated",
    ),
    pytest.param(sqlalchemy.exc.TimeoutError("QueuePool limit of size 10 reached"), PG, id="pool timeout"),
    pytest.param(
        raised(sqlalchemy.exc.StatementError("x", SQL, PARAMS, None), ConnectionResetError("reset")),
        PG,
        id="socket error under sqlalchemy",
    ),
    pytest.param(redis.exceptions.ConnectionError("Error 111 connecting"), REDIS, id="redis refused"),
    pytest.param(redis.exceptions.TimeoutError("Timeout reading"), REDIS, id="redis timeout"),
    pytest.param(redis.exceptions.BusyLoadingError("loading"), REDIS, id="redis loading"),
    pytest.param(nats.errors.NoServersError(), NATS, id="nats no servers"),
    pytest.param(nats.errors.TimeoutError(), NATS, id="nats timeout"),
    pytest.param(
        raised(RuntimeError("decision failed"), redis.exceptions.ConnectionError("refused")),
        REDIS,
        id="wrapped by our code",
    ),
]

NOT_OUTAGES = [
    pytest.param(psycopg.errors.DeadlockDetected("deadlock"), id="deadlock"),
    pytest.param(psycopg.errors.QueryCanceled("statement timeout"), id="statement timeout"),
    pytest.param(
        raised(
            sqlalchemy.exc.IntegrityError(SQL, PARAMS, psycopg.errors.UniqueViolation("dup")),
            psycopg.errors.UniqueViolation("dup"),
        ),
        id="unique violation",
    ),
    pytest.param(redis.exceptions.ResponseError("WRONGTYPE"), id="redis wrong type"),
    pytest.param(redis.exceptions.NoScriptError("NOSCRIPT"), id="redis script missing"),
    pytest.param(ConnectionRefusedError("refused, by whom?"), id="socket error of no store"),
    pytest.param(TimeoutError(), id="our own timeout"),
    pytest.param(ValueError("bug"), id="bug"),
]


@pytest.mark.parametrize(("exc", "kind"), OUTAGES)
def test_an_outage_is_told_with_its_store_and_a_short_reason(exc, kind):
    outage = outage_of(exc)
    assert outage is not None and outage.kind is kind
    assert "\n" not in outage.reason and len(outage.reason) <= 160


@pytest.mark.parametrize("exc", NOT_OUTAGES)
def test_bugs_bad_data_and_contention_are_no_outage(exc):
    assert outage_of(exc) is None


def test_the_reason_carries_neither_the_statement_nor_its_parameters():
    outage = outage_of(raised(sqlalchemy.exc.OperationalError(SQL, PARAMS, refused()), refused()))
    assert outage is not None
    assert outage.reason.startswith("connection failed:")
    assert "UPDATE" not in outage.reason and "5511999990000" not in outage.reason


# --- The tracker ---------------------------------------------------------------------------------------


@dataclass
class FakeProbe:
    """Fails while `down` is set, as a store's SELECT 1 or PING would."""

    down: bool = True
    calls: int = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.down:
            raise redis.exceptions.ConnectionError("still refused")


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ServingLog:
    heard: list[bool] = field(default_factory=list)

    async def __call__(self, serving: bool) -> None:
        self.heard.append(serving)


@dataclass
class Tracked:
    outages: StoreOutages
    redis_probe: FakeProbe
    nats_probe: FakeProbe
    clock: FakeClock
    serving: ServingLog


@pytest.fixture
async def tracked() -> AsyncIterator[Tracked]:
    clock = FakeClock()
    outages = StoreOutages("test-svc", probe_interval=0.01, clock=clock)
    redis_probe, nats_probe = FakeProbe(), FakeProbe()
    outages.add(Store(REDIS, holds="rate windows", probe=redis_probe))
    outages.add(Store(NATS, holds="events", probe=nats_probe, essential=False))
    serving = ServingLog()
    outages.listen(serving)
    stop = asyncio.Event()
    watcher = asyncio.create_task(outages.watch(stop))

    async def told_serving() -> bool:
        return serving.heard == [True]

    await eventually(told_serving)
    yield Tracked(outages, redis_probe, nats_probe, clock, serving)
    stop.set()
    await watcher


def store_up(service: str, store: StoreKind) -> float | None:
    return REGISTRY.get_sample_value("whatlead_store_up", {"service": service, "store": store.value})


def outages_counted(store: StoreKind) -> float:
    value = REGISTRY.get_sample_value("whatlead_store_outages_total", {"service": "test-svc", "store": store})
    return value or 0.0


async def test_an_outage_is_logged_once_however_many_calls_fail(tracked, caplog):
    caplog.set_level(logging.INFO, logger="libs.stores")
    counted = outages_counted(REDIS)
    for _ in range(500):
        store = tracked.outages.report(redis.exceptions.ConnectionError("Error 111 connecting"))
        assert store is not None and store.kind is REDIS
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["Redis unavailable: Error 111 connecting"]
    assert not any(r.exc_info for r in caplog.records)
    assert outages_counted(REDIS) == counted + 1
    assert store_up("test-svc", REDIS) == 0


async def test_a_probe_that_answers_ends_the_outage_with_its_duration(tracked, caplog):
    caplog.set_level(logging.INFO, logger="libs.stores")
    tracked.outages.report(redis.exceptions.ConnectionError("refused"))
    tracked.clock.now += 5.0

    async def probed_twice() -> bool:
        return tracked.redis_probe.calls >= 2

    await eventually(probed_twice)
    store = tracked.outages.store(REDIS)
    assert store is not None and not store.up
    tracked.redis_probe.down = False

    async def recovered() -> bool:
        return tracked.serving.heard[-1:] == [True] and tracked.outages.serving

    await eventually(recovered)
    assert tracked.serving.heard == [True, False, True]  # on listening, at the outage, at its end
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert [r.getMessage() for r in infos] == ["Redis available again after 5.0 s"]
    assert store_up("test-svc", REDIS) == 1


async def test_a_second_outage_is_a_new_warning(tracked, caplog):
    caplog.set_level(logging.INFO, logger="libs.stores")
    for _ in range(2):
        tracked.redis_probe.down = True
        tracked.outages.report(redis.exceptions.TimeoutError("Timeout reading"))
        tracked.redis_probe.down = False

        async def recovered() -> bool:
            return tracked.outages.serving

        await eventually(recovered)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2


async def test_the_service_keeps_serving_through_an_outage_of_a_store_it_can_do_without(tracked, caplog):
    caplog.set_level(logging.INFO, logger="libs.stores")
    assert tracked.outages.report(nats.errors.NoServersError()) is not None
    assert tracked.outages.serving

    async def probed() -> bool:
        return tracked.nats_probe.calls >= 2

    await eventually(probed)
    assert tracked.serving.heard == [True]
    assert [r.getMessage() for r in caplog.records] == [
        "NATS unavailable: nats: no servers available for connection"
    ]


async def test_failures_that_are_no_outage_of_its_stores_are_left_to_the_caller(tracked, caplog):
    caplog.set_level(logging.INFO, logger="libs.stores")
    assert tracked.outages.report(ValueError("bug")) is None
    assert tracked.outages.report(refused()) is None  # PostgreSQL: not one of this service's stores
    assert tracked.outages.unavailable(ValueError("bug")) is None
    assert tracked.outages.serving and not caplog.records


async def test_the_answer_to_a_call_names_the_store_in_the_clients_words(tracked):
    message = tracked.outages.unavailable(raised(RuntimeError("x"), redis.exceptions.ConnectionError("no")))
    assert message == "the rate windows store is unavailable; retry"
