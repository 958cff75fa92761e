from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession

from gate_service.domain.decision import DecisionReason
from gate_service.domain.intent import IntentStatus, MessageIntent
from gate_service.domain.ports import IntentFilter
from gate_service.domain.projection import InstanceState, Plan
from gate_service.infrastructure.batch_statements import (
    INTENT_ROWS,
    LOADED_VERSION,
    compiled,
    to_json,
    update_loaded_batch,
)
from gate_service.infrastructure.rows import (
    instance_row,
    intent_record,
    intent_row,
    plan_row,
    row_instance,
    row_intent,
)
from gate_service.infrastructure.tables import controls, intents, projected_instances, projected_plans
from libs.db.controls import SqlAlchemyExecutionControls
from libs.db.optimistic import OptimisticWrites
from libs.seedwork.clock import Clock
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.errors import FailedPrecondition, Reason

_UPDATE_LOADED_BATCH = compiled(update_loaded_batch())


class SqlAlchemyIntentRepository:
    """Intents as rows. Writes are flushed at commit; updates are optimistic on `version`."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self._session = session
        self._clock = clock
        self._writes: OptimisticWrites[MessageIntent] = OptimisticWrites(intents, "intent")
        # Intents read by `get_many`, with the version read: saved together in one statement.
        self._loaded_together: dict[str, tuple[MessageIntent, int]] = {}

    def add(self, intent: MessageIntent) -> None:
        self._writes.add(intent)

    async def get(self, organization_id: str, intent_id: str) -> MessageIntent | None:
        row = (
            await self._session.execute(
                select(intents).where(intents.c.id == intent_id, intents.c.organization_id == organization_id)
            )
        ).one_or_none()
        return self._remember(row)

    async def get_many(self, keys: Sequence[tuple[str, str]]) -> builtins.list[MessageIntent]:
        if not keys:
            return []
        wanted = set(keys)
        rows = (
            await self._session.execute(
                select(intents).where(
                    intents.c.id.in_({intent_id for _, intent_id in wanted}),
                    intents.c.organization_id.in_({organization_id for organization_id, _ in wanted}),
                )
            )
        ).all()
        found = [row_intent(row) for row in rows if (row.organization_id, row.id) in wanted]
        self._loaded_together.update((intent.id, (intent, intent.version)) for intent in found)
        return found

    async def find_by_key(self, organization_id: str, idempotency_key: str) -> MessageIntent | None:
        row = (
            await self._session.execute(
                select(intents).where(
                    intents.c.organization_id == organization_id, intents.c.idempotency_key == idempotency_key
                )
            )
        ).one_or_none()
        return self._remember(row)

    async def list(
        self, organization_id: str, *, after_id: str | None, limit: int, where: IntentFilter
    ) -> list[MessageIntent]:
        query = select(intents).where(intents.c.organization_id == organization_id)
        if after_id:
            query = query.where(intents.c.id > after_id)
        if where.status:
            query = query.where(intents.c.status == where.status.value)
        if where.purpose:
            query = query.where(intents.c.purpose == where.purpose.value)
        if where.instance_id:
            query = query.where(intents.c.decided_by_instance_id == where.instance_id)
        if where.target:
            query = query.where(intents.c.target_value == where.target)
        if where.campaign_id:
            query = query.where(intents.c.campaign_id == where.campaign_id)
        if where.created_after:
            query = query.where(intents.c.created_at >= where.created_after)
        if where.created_before:
            query = query.where(intents.c.created_at < where.created_before)
        rows = (await self._session.execute(query.order_by(intents.c.id).limit(limit))).all()
        return [row_intent(row) for row in rows]

    async def claim_due(self, now: datetime, limit: int) -> builtins.list[MessageIntent]:
        query = (
            select(intents)
            .where(intents.c.status == IntentStatus.QUEUED.value, intents.c.queued_until <= now)
            .order_by(intents.c.queued_until)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return await self._claim(query)

    async def claim_awaiting_instance(self, organization_id: str, limit: int) -> builtins.list[MessageIntent]:
        query = (
            select(intents)
            .where(
                intents.c.organization_id == organization_id,
                intents.c.status == IntentStatus.QUEUED.value,
                intents.c.status_reason == DecisionReason.NO_ELIGIBLE_INSTANCE.value,
            )
            .order_by(intents.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return await self._claim(query)

    async def _claim(self, query: Select[Any]) -> builtins.list[MessageIntent]:
        rows = (await self._session.execute(query)).all()
        return [self._writes.loaded(row_intent(row)) for row in rows]

    async def flush(self) -> None:
        """Write what changed; called by the unit of work right before it commits."""
        now = self._clock.now()
        await self._writes.flush(self._session, lambda intent: intent_row(intent, now))
        await self._flush_loaded_together(now)

    async def _flush_loaded_together(self, now: datetime) -> None:
        """The changed intents of `get_many` in one UPDATE, each only if its row still has the version it
        was read at; FailedPrecondition (and nothing of them saved) when any lost that race."""
        changed = [(i, version) for i, version in self._loaded_together.values() if i.version != version]
        if not changed:
            return
        rows = [{**intent_record(intent, now), LOADED_VERSION: version} for intent, version in changed]
        # The session's own connection (same transaction), through the driver as the group commit does:
        # the statement is prepared once whatever the batch size.
        connection = await self._session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        cursor = await driver.execute(_UPDATE_LOADED_BATCH, {INTENT_ROWS: to_json(rows)}, prepare=True)
        saved = {intent_id for (intent_id,) in await cursor.fetchall()}
        lost = [intent.id for intent, _ in changed if intent.id not in saved]
        if lost:
            raise FailedPrecondition(
                f"intent {lost[0]} was changed concurrently; retry",
                reason=Reason.CONCURRENT_MODIFICATION,
                metadata={"intent_id": lost[0]},
            )
        self._loaded_together.update((intent.id, (intent, intent.version)) for intent, _ in changed)

    def _remember(self, row: Any) -> MessageIntent | None:
        return self._writes.loaded(row_intent(row)) if row is not None else None


def upsert(table: Table, row: dict[str, Any], keys: list[str], version_columns: list[str]) -> Insert:
    """INSERT, or UPDATE when the row exists and the new one is not older (on every version column)."""
    statement = insert(table).values(row)
    newer = None
    for column in version_columns:
        condition = table.c[column] <= statement.excluded[column]
        newer = condition if newer is None else newer & condition
    return statement.on_conflict_do_update(
        index_elements=keys, set_={k: statement.excluded[k] for k in row if k not in keys}, where=newer
    )


class SqlAlchemyProjectionStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._controls = SqlAlchemyExecutionControls(session, controls)

    async def load_instance(self, instance_id: str) -> InstanceState | None:
        row = (
            await self._session.execute(
                select(projected_instances).where(projected_instances.c.instance_id == instance_id)
            )
        ).one_or_none()
        return row_instance(row) if row else None

    async def save_instance(self, state: InstanceState, changed_at: datetime) -> None:
        await self._session.execute(
            upsert(
                projected_instances,
                instance_row(state, changed_at),
                ["instance_id"],
                ["instance_version", "reputation_version"],
            )
        )

    async def save_control(self, control: ExecutionControl, changed_at: datetime) -> None:
        await self._controls.save_if_newer(control, projected_at=changed_at)

    async def save_plan(self, plan: Plan, changed_at: datetime) -> None:
        await self._session.execute(
            upsert(projected_plans, plan_row(plan, changed_at), ["organization_id"], ["version"])
        )
