"""The rate windows as the Gate's approved intents count them, read from PostgreSQL when Redis lost them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by, array_agg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gate_service.domain.intent import IntentStatus
from gate_service.domain.rates import (
    ContactUsage,
    InstanceUsage,
    PlanUsage,
    SentWindows,
    day_start,
    hour_start,
    minute_start,
    month_start,
)
from gate_service.infrastructure.tables import intents
from libs.seedwork.clock import Clock

# Every intent that took a slot: the windows counted it when it was approved, whatever came after.
_COUNTED = (IntentStatus.APPROVED, IntentStatus.SENT, IntentStatus.FAILED)
# An instance's last send matters for its minimum interval (seconds); a day covers any phase's.
_INSTANCE_MEMORY = timedelta(days=1)


def id_floor(moment: datetime) -> str:
    """The smallest UUIDv7 of `moment`'s millisecond: ids are time-ordered, so `id >= id_floor(t)` keeps a
    scan of intents created since t on the primary key instead of the whole table."""
    hex_ms = f"{int(moment.timestamp() * 1000):012x}"
    return f"{hex_ms[:8]}-{hex_ms[8:]}-0000-0000-000000000000"


class SqlAlchemySentHistory:
    """SentHistory over the intents table: three grouped reads in one transaction (instances, contacts,
    plans). An intent is decided at most `max_validity` after it was created, which bounds the scan."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        max_validity: timedelta,
        contact_memory: timedelta,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._max_validity = max_validity
        self._contact_memory = contact_memory  # the contact gap: how long a contact's last send matters

    async def current_windows(self) -> SentWindows:
        now = self._clock.now()
        minute, hour, day, month = minute_start(now), hour_start(now), day_start(now), month_start(now)
        async with self._sessions() as session:
            instances = await _rows(
                session,
                self._counted(now - _INSTANCE_MEMORY)
                .with_only_columns(
                    intents.c.decided_by_instance_id,
                    func.count().filter(intents.c.decided_at >= minute),
                    func.count().filter(intents.c.decided_at >= hour),
                    func.count().filter(intents.c.decided_at >= day),
                    func.max(intents.c.decided_at),
                )
                .group_by(intents.c.decided_by_instance_id),
            )
            contacts = await _rows(
                session,
                self._counted(min(hour, now - self._contact_memory))
                .with_only_columns(
                    intents.c.organization_id,
                    intents.c.target_value,
                    func.count().filter(intents.c.decided_at >= hour),
                    func.max(intents.c.decided_at),
                    array_agg(
                        aggregate_order_by(intents.c.decided_by_instance_id, intents.c.decided_at.desc())
                    )[1],
                )
                .group_by(intents.c.organization_id, intents.c.target_value),
            )
            plans = await _rows(
                session,
                self._counted(month)
                .with_only_columns(
                    intents.c.organization_id,
                    func.count().filter(intents.c.decided_at >= day),
                    func.count(),
                )
                .group_by(intents.c.organization_id),
            )
            return SentWindows(
                at=now,
                instances={
                    instance_id: InstanceUsage(minute=m, hour=h, day=d, last_sent_at=last)
                    for instance_id, m, h, d, last in instances
                    if instance_id is not None
                },
                contacts={
                    (org, target): ContactUsage(hour=h, last_sent_at=last, last_instance_id=instance_id)
                    for org, target, h, last, instance_id in contacts
                },
                plans={org: PlanUsage(day=d, month=mo) for org, d, mo in plans},
            )

    def _counted(self, since: datetime) -> Select[Any]:
        return select(intents.c.id).where(
            intents.c.id >= id_floor(since - self._max_validity),
            intents.c.status.in_(_COUNTED),
            intents.c.decided_at >= since,
        )


async def _rows(session: AsyncSession, statement: Select[Any]) -> list[Any]:
    return list(await session.execute(statement))
