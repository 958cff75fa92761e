"""Outages of the stores a service needs (PostgreSQL, Redis, NATS): told apart from bugs, logged once per
outage, counted, reflected in gRPC health and answered UNAVAILABLE (ADR 0009).

`outage_of` recognises a failure that means a store is away (refused, reset or timed-out connections, a
server shutting down or out of connections, an exhausted pool) rather than a bug or a bad request.
`StoreOutages.report` records it against the service's store of that kind: the first failure logs ONE
WARNING and marks the store down; later failures while it is down are only counted by their callers.
While a store is down, `StoreOutages.watch` probes it (`SELECT 1`, `PING`) every `probe_interval`; the
first probe that answers ends the outage with one INFO line giving its duration. Listeners (the gRPC
server's health) hear when the service stops or resumes serving: it serves while every store it cannot
work without is up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import nats.errors
import nats.js.errors
import psycopg
import redis.exceptions
import sqlalchemy.exc
from nats.js import JetStreamContext
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.logs import redact_text

log = logging.getLogger(__name__)

# Several processes (multiprocess mode, libs.metrics_endpoint): down while any of them sees the outage.
STORE_UP = Gauge(
    "whatlead_store_up",
    "1 while the store answers, 0 during an outage",
    ["service", "store"],
    multiprocess_mode="min",
)
STORE_OUTAGES = Counter("whatlead_store_outages_total", "Outages of a store, by store", ["service", "store"])


class StoreKind(StrEnum):
    POSTGRESQL = "PostgreSQL"
    REDIS = "Redis"
    NATS = "NATS"


@dataclass(frozen=True)
class Outage:
    kind: StoreKind
    reason: str  # one short line for the log, no SQL or parameters


# --- What counts as an outage -------------------------------------------------------------------------

_PACKAGES = {
    "sqlalchemy": StoreKind.POSTGRESQL,
    "psycopg": StoreKind.POSTGRESQL,
    "psycopg_pool": StoreKind.POSTGRESQL,
    "redis": StoreKind.REDIS,
    "nats": StoreKind.NATS,
}
# PostgreSQL error classes that mean the server is away or cannot take work, not that the statement is
# wrong: connection exceptions, insufficient resources (too many connections, disk full), shutdown or
# "starting up" (57P0x), system errors. Deadlocks, serialization failures, lock and statement timeouts
# are OperationalErrors too, but the server is there: not an outage.
_POSTGRES_OUTAGE_SQLSTATES = ("08", "53", "57P", "58")
_REDIS_OUTAGES = (
    redis.exceptions.ConnectionError,  # refused, reset, closed; BusyLoadingError (loading its data) too
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica during failover
    redis.exceptions.MasterDownError,
    redis.exceptions.TryAgainError,
)
_NATS_OUTAGES = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoRespondersError,  # no JetStream behind the subject
    nats.errors.TimeoutError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
)


def outage_of(exc: BaseException) -> Outage | None:
    """The store outage behind `exc` (looking through its causes), or None when it is something else."""
    around: StoreKind | None = None  # the store whose client raised what we look at, once we know it
    for cause in _causes(exc):
        around = _PACKAGES.get(type(cause).__module__.partition(".")[0], around)
        kind = _outage_kind(cause, around)
        if kind is not None:
            return Outage(kind, _reason(cause))
    return None


def _outage_kind(exc: BaseException, around: StoreKind | None) -> StoreKind | None:
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        # Otherwise the driver's error (its cause, looked at next) decides.
        invalidated = exc.connection_invalidated or isinstance(exc, sqlalchemy.exc.InterfaceError)
        return StoreKind.POSTGRESQL if invalidated else None
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection came free in time
        return StoreKind.POSTGRESQL
    if isinstance(exc, psycopg.OperationalError):
        away = exc.sqlstate is None or exc.sqlstate.startswith(_POSTGRES_OUTAGE_SQLSTATES)
        return StoreKind.POSTGRESQL if away else None
    if isinstance(exc, psycopg.InterfaceError):
        return StoreKind.POSTGRESQL
    if isinstance(exc, _REDIS_OUTAGES):
        return StoreKind.REDIS
    if isinstance(exc, _NATS_OUTAGES):
        return StoreKind.NATS
    # A socket error (refused, reset, timed out) inside a store client's error: that store is away.
    return around if isinstance(exc, OSError) else None


def _causes(exc: BaseException, limit: int = 10) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < limit:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def _reason(exc: BaseException) -> str:
    # A DBAPIError's own text carries the statement and its parameters: the driver's error says enough.
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig
    lines = str(exc).strip().splitlines()
    reason = lines[0].strip() if lines else type(exc).__name__
    return redact_text(reason[:160])


# --- Tracking each store's outages --------------------------------------------------------------------

Probe = Callable[[], Awaitable[object]]
ServingListener = Callable[[bool], Awaitable[None]]


class Store:
    """One store a service uses: what it holds (for the clients' message), how to probe it, and whether
    the service can work without it (`essential=False`: its outage is logged but the service serves)."""

    def __init__(self, kind: StoreKind, *, holds: str, probe: Probe, essential: bool = True) -> None:
        self.kind = kind
        self.holds = holds
        self.probe = probe
        self.essential = essential
        self.unavailable_message = f"the {holds} store is unavailable; retry"
        self.down_since: float | None = None

    @property
    def up(self) -> bool:
        return self.down_since is None


class StoreOutages:
    """The stores of one service and their outages. `report` is what every `except` that may see a store
    failure calls (the gRPC interceptor, the relay, consumers, workers); `watch` runs as a worker."""

    def __init__(
        self,
        service: str,
        *,
        probe_interval: float = 0.5,
        probe_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._stores: dict[StoreKind, Store] = {}
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._clock = clock
        self._listeners: list[ServingListener] = []
        self._told: bool | None = None  # what the listeners last heard
        self._changed = asyncio.Event()

    def add(self, store: Store) -> Store:
        self._stores[store.kind] = store
        STORE_UP.labels(self._service, store.kind.value).set(1)
        return store

    def store(self, kind: StoreKind) -> Store | None:
        return self._stores.get(kind)

    @property
    def serving(self) -> bool:
        """True while every store the service cannot work without is up."""
        return all(store.up for store in self._stores.values() if store.essential)

    def report(self, exc: BaseException) -> Store | None:
        """If `exc` is an outage of one of this service's stores, record it (the first failure of an outage
        logs one WARNING) and return that store; None for any other failure, which the caller handles as
        before."""
        outage = outage_of(exc)
        store = self._stores.get(outage.kind) if outage is not None else None
        if outage is None or store is None:
            return None
        if store.up:
            store.down_since = self._clock()
            STORE_UP.labels(self._service, store.kind.value).set(0)
            STORE_OUTAGES.labels(self._service, store.kind.value).inc()
            log.warning(
                "%s unavailable: %s", store.kind.value, outage.reason, extra={"store": store.kind.value}
            )
            self._changed.set()
        return store

    def unavailable(self, exc: BaseException) -> str | None:
        """For the gRPC interceptor: the message of an UNAVAILABLE answer when `exc` is a store outage."""
        store = self.report(exc)
        return store.unavailable_message if store is not None else None

    def listen(self, listener: ServingListener) -> None:
        """`listener(serving)` is awaited whenever the service stops or resumes serving."""
        self._listeners.append(listener)
        self._told = None  # the next look tells the new listener too
        self._changed.set()

    async def probe_down_stores(self) -> None:
        """One round: probe every store that is down; each that answers ends its outage."""
        for store in [store for store in self._stores.values() if not store.up]:
            try:
                await asyncio.wait_for(store.probe(), self._probe_timeout)
            except asyncio.CancelledError:
                raise
            except Exception:
                continue  # still down; its outage was logged when it began
            self._recovered(store)

    async def watch(self, stop: asyncio.Event) -> None:
        """Worker: tells the listeners when serving changes, and probes stores while they are down."""
        while not stop.is_set():
            down = not all(store.up for store in self._stores.values())
            # Down: probe every interval. Up: sleep until a failure is reported.
            await _wait_any(stop, self._changed, self._probe_interval if down else None)
            self._changed.clear()
            if down and not stop.is_set():
                await self.probe_down_stores()
            await self._tell_listeners()

    def _recovered(self, store: Store) -> None:
        assert store.down_since is not None
        lasted = self._clock() - store.down_since
        store.down_since = None
        STORE_UP.labels(self._service, store.kind.value).set(1)
        log.info(
            "%s available again after %.1f s",
            store.kind.value,
            lasted,
            extra={"store": store.kind.value, "outage_seconds": round(lasted, 3)},
        )

    async def _tell_listeners(self) -> None:
        serving = self.serving
        if serving == self._told:
            return
        self._told = serving
        for listener in self._listeners:
            try:
                await listener(serving)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("a serving-state listener failed")


async def _wait_any(stop: asyncio.Event, event: asyncio.Event, timeout: float | None) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(event.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


# --- Probes: the cheapest round trip each store answers -----------------------------------------------


def postgres_probe(engine: AsyncEngine) -> Probe:
    async def probe() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return probe


def redis_probe(client: Redis) -> Probe:
    async def probe() -> None:
        await client.ping()

    return probe


def jetstream_probe(js: JetStreamContext) -> Probe:
    async def probe() -> Any:
        return await js.account_info()

    return probe
