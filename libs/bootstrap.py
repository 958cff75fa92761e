"""The infrastructure every service opens the same way: database, NATS, streams and the outbox relay."""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from libs.config import ServiceSettings
from libs.db.engine import create_engine, session_factory
from libs.messaging.nats_connection import connect_nats
from libs.messaging.publisher import JetStreamPublisher
from libs.messaging.relay import OutboxRelay
from libs.messaging.streams import ensure_streams
from libs.messaging.tables import MessagingTables
from libs.seedwork.clock import Clock


@dataclass
class Infrastructure:
    service: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    nats: Client
    js: JetStreamContext
    relay: OutboxRelay

    async def close(self) -> None:
        await self.nats.drain()
        await self.relay.close()
        await self.engine.dispose()


async def open_infrastructure(
    service: str, settings: ServiceSettings, tables: MessagingTables, clock: Clock
) -> Infrastructure:
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    nats = await connect_nats(settings.nats_url, name=service)
    js = nats.jetstream()
    await ensure_streams(js, settings.subject_root)
    relay = OutboxRelay(
        service=service,
        sessions=sessions,
        outbox=tables.outbox,
        inbox=tables.inbox,
        publisher=JetStreamPublisher(js, max_payload=nats.max_payload),
        subject_root=settings.subject_root,
        clock=clock,
    )
    return Infrastructure(service, engine, sessions, nats, js, relay)
