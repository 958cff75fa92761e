"""The kill-switch projection's table, added to the metadata of each service that obeys it, and its store.

The Gate and the Executor project the same `ExecutionControlChanged` events: one table definition and one
version-checked write keep their copies from drifting apart. `libs.db.migration_ops` creates the table in
each service's first revision; the migration tests compare the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Index, MetaData, String, Table, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.db.types import UtcDateTime
from libs.seedwork.controls import ControlKey, ExecutionControl
from libs.seedwork.shared_kernel import ControlScope

# Ids are UUIDs (36) or an organization's or a campaign's own id, at most 64 everywhere they are stored.
ID_LENGTH = 64
SCOPE_LENGTH = 20  # the longest ControlScope is 12: room for one more scope without a migration


def execution_controls_table(metadata: MetaData) -> Table:
    """One row per scope: the newest control ops published for it."""
    table = Table(
        "execution_controls",
        metadata,
        Column("organization_id", String(ID_LENGTH), primary_key=True),
        Column("scope", String(SCOPE_LENGTH), primary_key=True),
        Column("scope_id", String(ID_LENGTH), primary_key=True),
        Column("paused", Boolean, nullable=False),
        Column("paused_until", UtcDateTime, nullable=True),
        Column("version", BigInteger, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),  # when ops changed it
        # When this database stored it: replicas that keep the projection in memory re-read by it (ops'
        # `updated_at` of an event delivered late would be older than what they already read).
        Column("projected_at", UtcDateTime, nullable=False),
    )
    # Most scopes are active most of the time; the hot read is "every paused control".
    Index("ix_execution_controls_paused", table.c.organization_id, postgresql_where=text("paused"))
    Index("ix_execution_controls_projected_at", table.c.projected_at)
    return table


class SqlAlchemyExecutionControls:
    """The projection in one service's database, inside the caller's session (and transaction)."""

    def __init__(self, session: AsyncSession, table: Table) -> None:
        self._session = session
        self._table = table

    async def save_if_newer(self, control: ExecutionControl, *, projected_at: datetime) -> bool:
        """Store the control unless the stored one of its scope is as new (`ExecutionControl.supersedes`,
        checked by the database so that concurrent writers cannot go back). True when stored."""
        table = self._table
        insert_row = insert(table).values(_row(control, projected_at))
        newer = insert_row.excluded
        statement = insert_row.on_conflict_do_update(
            index_elements=[table.c.organization_id, table.c.scope, table.c.scope_id],
            set_={name: newer[name] for name in _CHANGING},
            where=table.c.version < newer.version,
        ).returning(table.c.version)  # a row only when inserted or updated
        return (await self._session.execute(statement)).first() is not None

    async def paused(self) -> list[ExecutionControl]:
        """Every control that was paused when ops last changed it (a timed pause may have ended since:
        `ExecutionControl.holds` tells)."""
        query = select(self._table).where(self._table.c.paused.is_(True))
        return [_control(row) for row in await self._session.execute(query)]

    async def of_scopes(self, keys: Sequence[ControlKey]) -> list[ExecutionControl]:
        """The stored controls of these scopes, paused or not (a scope never changed has none)."""
        if not keys:
            return []
        table = self._table
        scope = tuple_(table.c.organization_id, table.c.scope, table.c.scope_id)
        query = select(table).where(scope.in_([(org, kind.value, scope_id) for org, kind, scope_id in keys]))
        return [_control(row) for row in await self._session.execute(query)]

    async def projected_since(self, since: datetime | None) -> list[ExecutionControl]:
        """Controls stored at or after `since` (all of them when None)."""
        query = select(self._table)
        if since is not None:
            query = query.where(self._table.c.projected_at >= since)
        return [_control(row) for row in await self._session.execute(query)]


_CHANGING = ("paused", "paused_until", "version", "updated_at", "projected_at")


def _row(control: ExecutionControl, projected_at: datetime) -> dict[str, Any]:
    return {
        "organization_id": control.organization_id,
        "scope": control.scope.value,
        "scope_id": control.scope_id,
        "paused": control.paused,
        "paused_until": control.paused_until,
        "version": control.version,
        "updated_at": control.updated_at,
        "projected_at": projected_at,
    }


def _control(row: Any) -> ExecutionControl:
    return ExecutionControl(
        organization_id=row.organization_id,
        scope=ControlScope(row.scope),
        scope_id=row.scope_id,
        paused=row.paused,
        paused_until=row.paused_until,
        version=row.version,
        updated_at=row.updated_at,
    )
