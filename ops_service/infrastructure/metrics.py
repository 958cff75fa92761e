"""Prometheus series of the ops context (labels never carry ids: bounded cardinality)."""

from datetime import datetime

from prometheus_client import Counter, Gauge
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.seedwork.shared_kernel import ControlScope
from ops_service.domain.control import ControlStatus
from ops_service.infrastructure.tables import controls

PAUSES = Counter("whatlead_ops_pauses_total", "Scopes paused (or paused again), by scope", ["scope"])
RESUMES = Counter(
    "whatlead_ops_resumes_total",
    "Paused scopes resumed, by scope and reason (EXPIRED: a timed pause that reached its end)",
    ["scope", "reason"],
)
API_KEYS_CREATED = Counter("whatlead_ops_api_keys_created_total", "API keys issued, by role", ["role"])
API_KEYS_REVOKED = Counter("whatlead_ops_api_keys_revoked_total", "API keys revoked, by role", ["role"])
WATCHERS = Gauge(
    "whatlead_ops_intent_watchers", "WatchIntents streams open on this process", multiprocess_mode="livesum"
)
WATCH_DELIVERIES = Counter(
    "whatlead_ops_intent_watch_deliveries_total", "Intent changes written to WatchIntents streams"
)
WATCH_CUT_OFFS = Counter(
    "whatlead_ops_intent_watch_cut_offs_total",
    "WatchIntents streams ended RESOURCE_EXHAUSTED: the watcher fell a whole buffer behind",
)

# Kill switches in force, read from the database periodically (every process reads the same table).
PAUSED_SCOPES = Gauge(
    "whatlead_ops_paused_scopes",
    "Pauses in force (not resumed, not past their end), by scope, as of the last reading",
    ["scope"],
    multiprocess_mode="mostrecent",
)
OLDEST_PAUSE_AGE = Gauge(
    "whatlead_ops_oldest_pause_age_seconds",
    "How long the oldest pause in force has been so (since its last change), by scope; 0 when none",
    ["scope"],
    multiprocess_mode="mostrecent",
)


async def report_pauses(sessions: async_sessionmaker[AsyncSession], now: datetime) -> None:
    in_force = (controls.c.status == ControlStatus.PAUSED.value) & or_(
        controls.c.paused_until.is_(None), controls.c.paused_until > now
    )
    query = (
        select(controls.c.scope, func.count(), func.min(controls.c.updated_at))
        .where(in_force)
        .group_by(controls.c.scope)
    )
    async with sessions() as session:
        found = {row[0]: (int(row[1]), row[2]) for row in await session.execute(query)}
    for scope in ControlScope:
        count, oldest = found.get(scope.value, (0, None))
        PAUSED_SCOPES.labels(scope.value).set(count)
        OLDEST_PAUSE_AGE.labels(scope.value).set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
