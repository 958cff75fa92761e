"""The infrastructure every service opens the same way: database, NATS, streams, the outbox relay, and the
API key directory its gRPC server authenticates from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from libs.config import ServiceSettings
from libs.db.engine import create_engine, session_factory
from libs.messaging.key_directory import KeyDirectoryWatcher
from libs.messaging.nats_connection import connect_nats
from libs.messaging.publisher import JetStreamPublisher
from libs.messaging.relay import OutboxRelay
from libs.messaging.streams import ensure_streams
from libs.messaging.tables import MessagingTables
from libs.rpc.auth import Authenticator
from libs.rpc.keys import KeyTable
from libs.rpc.server import ServicerBinding
from libs.runtime import ServiceParts, Worker
from libs.seedwork.clock import Clock
from libs.stores import Store, StoreKind, StoreOutages, jetstream_probe, postgres_probe


@dataclass
class Infrastructure:
    service: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    nats: Client
    js: JetStreamContext
    relay: OutboxRelay
    outages: StoreOutages
    keys: KeyDirectoryWatcher
    authenticator: Authenticator

    def parts(
        self,
        bindings: Sequence[ServicerBinding[Any]],
        workers: Sequence[Worker],
        close: Callable[[], Awaitable[None]],
    ) -> ServiceParts:
        """What the runtime serves: the service's bindings and workers, with the infrastructure's own
        workers (store probes, outbox relay, key directory watch) and its authenticator."""
        return ServiceParts(
            bindings=bindings,
            workers=[self.outages.watch, self.relay.run, self.keys.run, *workers],
            close=close,
            outages=self.outages,
            authenticator=self.authenticator,
        )

    async def close(self) -> None:
        await self.nats.drain()
        await self.relay.close()
        await self.engine.dispose()


async def open_infrastructure(
    service: str, settings: ServiceSettings, tables: MessagingTables, clock: Clock, *, database_holds: str
) -> Infrastructure:
    """`database_holds`: what the service's database keeps, in the words its clients know ("intents"):
    during an outage they are told "the intents store is unavailable; retry"."""
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    nats = await connect_nats(settings.nats_url, name=service)
    js = nats.jetstream()
    await ensure_streams(js, settings.subject_root)
    outages = StoreOutages(service)
    outages.add(Store(StoreKind.POSTGRESQL, holds=database_holds, probe=postgres_probe(engine)))
    # Events wait in the outbox while NATS is away: calls go on, so its outage is logged, not NOT_SERVING.
    outages.add(Store(StoreKind.NATS, holds="events", probe=jetstream_probe(js), essential=False))
    relay = OutboxRelay(
        service=service,
        sessions=sessions,
        outbox=tables.outbox,
        inbox=tables.inbox,
        publisher=JetStreamPublisher(js, max_payload=nats.max_payload),
        subject_root=settings.subject_root,
        clock=clock,
        outages=outages,
    )
    # Calls are answered only once the current keys are known: a key issued before this start must work.
    keys = KeyDirectoryWatcher(nats, js, settings.subject_root, KeyTable())
    await keys.load()
    authenticator = Authenticator(keys.table, settings.accepted_service_credentials())
    return Infrastructure(service, engine, sessions, nats, js, relay, outages, keys, authenticator)
