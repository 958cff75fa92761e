"""Reputation per instance in PostgreSQL: one row each, locked in instance id order while an evaluation or
a restriction changes it; the evaluator's queues are partial indexes (dirty rows, running cooldowns)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reputation_service.domain.evaluation import (
    CooldownReason,
    CooldownRecord,
    HealthStatus,
    ReputationAlert,
    ReputationState,
)
from reputation_service.domain.ports import InstanceReputation, ReputationFilter
from reputation_service.domain.warmup import WarmupPhase
from reputation_service.infrastructure.tables import instances, reputation_states

_R = reputation_states


def _select() -> Select[Any]:
    return select(_R, instances.c.created_at.label("registered_at")).join(
        instances, instances.c.id == _R.c.instance_id
    )


class SqlAlchemyReputationStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, reputation: InstanceReputation) -> None:
        await self._session.execute(
            insert(_R).values(
                instance_id=reputation.instance_id,
                organization_id=reputation.organization_id,
                explanation=reputation.explanation,
                dirty_since=None,
                **_state_row(reputation.state),
            )
        )

    async def lock(self, instance_ids: Collection[str]) -> dict[str, InstanceReputation]:
        if not instance_ids:
            return {}
        query = (
            _select()
            .where(_R.c.instance_id.in_(sorted(instance_ids)))
            .order_by(_R.c.instance_id)
            .with_for_update(of=_R)
        )
        return {row.instance_id: _to_reputation(row) for row in await self._session.execute(query)}

    async def save(
        self, instance_id: str, state: ReputationState, *, explanation: Mapping[str, object] | None
    ) -> None:
        values: dict[str, Any] = {**_state_row(state), "dirty_since": None}
        if explanation is not None:
            values["explanation"] = dict(explanation)
        await self._session.execute(update(_R).where(_R.c.instance_id == instance_id).values(**values))

    async def mark_dirty(self, instance_ids: Collection[str], *, at: datetime) -> None:
        if not instance_ids:
            return
        # Already marked rows are left alone: no write, no lock taken on them by a busy consumer.
        await self._session.execute(
            update(_R)
            .where(_R.c.instance_id.in_(sorted(instance_ids)), _R.c.dirty_since.is_(None))
            .values(dirty_since=at)
        )

    async def due(
        self, now: datetime, *, debounce: timedelta, aging: timedelta, limit: int, dirty_only: bool
    ) -> list[InstanceReputation]:
        dirty = and_(
            _R.c.dirty_since.is_not(None),
            or_(_R.c.evaluated_at.is_(None), _R.c.evaluated_at <= now - debounce),
        )
        if dirty_only:
            condition = dirty
        else:
            condition = or_(
                dirty,
                _R.c.cooldown_until <= now,
                _R.c.evaluated_at.is_(None),
                _R.c.evaluated_at <= now - aging,
            )
        query = (
            _select()
            .where(condition)
            .order_by(_R.c.instance_id)
            .limit(limit)
            .with_for_update(of=_R, skip_locked=True)
        )
        return [_to_reputation(row) for row in await self._session.execute(query)]

    async def get(self, organization_id: str, instance_id: str) -> InstanceReputation | None:
        row = (
            await self._session.execute(
                _select().where(_R.c.instance_id == instance_id, _R.c.organization_id == organization_id)
            )
        ).one_or_none()
        return _to_reputation(row) if row is not None else None

    async def list(
        self, organization_id: str, *, after_id: str | None, limit: int, where: ReputationFilter
    ) -> list[InstanceReputation]:
        query = _select().where(_R.c.organization_id == organization_id)
        if after_id:
            query = query.where(_R.c.instance_id > after_id)
        if where.health is not None:
            query = query.where(_R.c.health == where.health.value)
        if where.phase is not None:
            query = query.where(_R.c.phase == where.phase.value)
        rows = await self._session.execute(query.order_by(_R.c.instance_id).limit(limit))
        return [_to_reputation(row) for row in rows]

    async def of_instances(self, instance_ids: Collection[str]) -> dict[str, InstanceReputation]:
        if not instance_ids:
            return {}
        rows = await self._session.execute(_select().where(_R.c.instance_id.in_(list(instance_ids))))
        return {row.instance_id: _to_reputation(row) for row in rows}

    async def census(self) -> dict[tuple[HealthStatus, WarmupPhase], int]:
        rows = await self._session.execute(
            select(_R.c.health, _R.c.phase, func.count()).group_by(_R.c.health, _R.c.phase)
        )
        return {(HealthStatus(row[0]), WarmupPhase(row[1])): int(row[2]) for row in rows}


def _state_row(state: ReputationState) -> dict[str, Any]:
    return {
        "score": state.score,
        "health": state.health.value,
        "phase": state.phase.value,
        "phase_since": state.phase_since,
        "regressed_at": state.regressed_at,
        "cooldown_until": state.cooldown_until,
        "cooldown_reason": state.cooldown_reason.value if state.cooldown_reason else None,
        "cooldown_history": [
            {"reason": r.reason.value, "started_at": r.started_at.isoformat(), "until": r.until.isoformat()}
            for r in state.cooldown_history
        ],
        "alerts": ",".join(alert.value for alert in state.alerts),
        "banned_at": state.banned_at,
        "evaluated_at": state.evaluated_at,
        "version": state.version,
        "evaluation_version": state.evaluation_version,
    }


def _to_reputation(row: Any) -> InstanceReputation:
    state = ReputationState(
        score=row.score,
        health=HealthStatus(row.health),
        phase=WarmupPhase(row.phase),
        phase_since=row.phase_since,
        regressed_at=row.regressed_at,
        cooldown_until=row.cooldown_until,
        cooldown_reason=CooldownReason(row.cooldown_reason) if row.cooldown_reason else None,
        cooldown_history=tuple(
            CooldownRecord(
                reason=CooldownReason(record["reason"]),
                started_at=datetime.fromisoformat(record["started_at"]),
                until=datetime.fromisoformat(record["until"]),
            )
            for record in row.cooldown_history
        ),
        alerts=tuple(ReputationAlert(alert) for alert in row.alerts.split(",") if alert),
        banned_at=row.banned_at,
        evaluated_at=row.evaluated_at,
        version=row.version,
        evaluation_version=row.evaluation_version,
    )
    return InstanceReputation(
        instance_id=row.instance_id,
        organization_id=row.organization_id,
        registered_at=row.registered_at,
        state=state,
        explanation=row.explanation,
    )
