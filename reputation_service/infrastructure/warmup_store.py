"""Warm-up settings, plans and planned messages in PostgreSQL. Each method is one short transaction of its
own: the planner publishes no events, so it needs no outbox."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reputation_service.domain.warmup import WarmupPhase
from reputation_service.domain.warmup_plan import (
    MessageRole,
    MessageStatus,
    Partner,
    PlannedMessage,
    WarmupPlan,
    WarmupSchedule,
)
from reputation_service.infrastructure.tables import warmup_messages, warmup_plans, warmup_settings


class SqlAlchemyWarmupStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def get_settings(self, organization_id: str) -> WarmupSchedule | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(warmup_settings).where(warmup_settings.c.organization_id == organization_id)
                )
            ).one_or_none()
        if row is None:
            return None
        return WarmupSchedule(
            start=_time(row.start_minute),
            end=_time(row.end_minute),
            time_zone=row.time_zone,
            friendly_numbers=tuple(p for p in row.friendly_numbers.split(",") if p),
        )

    async def put_settings(self, organization_id: str, schedule: WarmupSchedule, now: datetime) -> None:
        values = {
            "start_minute": schedule.start.hour * 60 + schedule.start.minute,
            "end_minute": schedule.end.hour * 60 + schedule.end.minute,
            "time_zone": schedule.time_zone,
            "friendly_numbers": ",".join(schedule.friendly_numbers),
            "updated_at": now,
        }
        statement = insert(warmup_settings).values(organization_id=organization_id, **values)
        async with self._sessions.begin() as session:
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[warmup_settings.c.organization_id], set_=values
                )
            )

    async def has_plan(self, instance_id: str, day: date) -> bool:
        async with self._sessions() as session:
            found = await session.scalar(
                select(warmup_plans.c.instance_id).where(
                    warmup_plans.c.instance_id == instance_id, warmup_plans.c.day == day
                )
            )
        return found is not None

    async def get_plan(self, instance_id: str, day: date) -> WarmupPlan | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(warmup_plans).where(
                        warmup_plans.c.instance_id == instance_id, warmup_plans.c.day == day
                    )
                )
            ).one_or_none()
            if row is None:
                return None
            rows = (
                await session.execute(
                    select(warmup_messages)
                    .where(warmup_messages.c.instance_id == instance_id, warmup_messages.c.day == day)
                    .order_by(warmup_messages.c.conversation, warmup_messages.c.due_at)
                )
            ).all()
        return WarmupPlan(
            organization_id=row.organization_id,
            instance_id=row.instance_id,
            day=row.day,
            day_number=row.day_number,
            phase=WarmupPhase(row.phase),
            window_start=row.window_start,
            window_end=row.window_end,
            time_zone=row.time_zone,
            messages=tuple(_message(r) for r in rows),
            note=row.note,
            created_at=row.created_at,
        )

    async def add_plan(self, plan: WarmupPlan, now: datetime) -> bool:
        async with self._sessions.begin() as session:
            inserted = await session.execute(
                insert(warmup_plans)
                .values(
                    instance_id=plan.instance_id,
                    day=plan.day,
                    organization_id=plan.organization_id,
                    day_number=plan.day_number,
                    phase=plan.phase.value,
                    window_start=plan.window_start,
                    window_end=plan.window_end,
                    time_zone=plan.time_zone,
                    note=plan.note[:200],
                    created_at=now,
                )
                .on_conflict_do_nothing()
                .returning(warmup_plans.c.instance_id)
            )
            if inserted.first() is None:
                return False  # another replica made it first: its plan stands
            if plan.messages:
                await session.execute(insert(warmup_messages), [_row(m, now) for m in plan.messages])
        return True

    async def claim_due(self, now: datetime, *, limit: int, lease: timedelta) -> list[PlannedMessage]:
        due = (
            select(warmup_messages.c.idempotency_key)
            .where(
                warmup_messages.c.status == MessageStatus.PLANNED.value,
                warmup_messages.c.due_at <= now,
                or_(warmup_messages.c.lease_until.is_(None), warmup_messages.c.lease_until <= now),
            )
            .order_by(warmup_messages.c.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._sessions.begin() as session:
            rows = (
                await session.execute(
                    update(warmup_messages)
                    .where(warmup_messages.c.idempotency_key.in_(due.scalar_subquery()))
                    .values(lease_until=now + lease)
                    .returning(*warmup_messages.c)
                )
            ).all()
        return sorted((_message(r) for r in rows), key=lambda m: m.due_at)

    async def record(
        self,
        key: str,
        *,
        status: MessageStatus,
        now: datetime,
        intent_id: str = "",
        gate_instance_id: str = "",
        reason: str = "",
        retry_at: datetime | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "status": status.value,
            "lease_until": retry_at,
            "reason": reason[:200],
            "updated_at": now,
        }
        if intent_id:
            values["intent_id"] = intent_id
        if gate_instance_id:
            values["gate_instance_id"] = gate_instance_id
        if status in (MessageStatus.SUBMITTED, MessageStatus.SENT, MessageStatus.FAILED) and intent_id:
            # The first time the Gate took it; a recheck keeps it.
            values["submitted_at"] = func.coalesce(warmup_messages.c.submitted_at, now)
        async with self._sessions.begin() as session:
            await session.execute(
                update(warmup_messages).where(warmup_messages.c.idempotency_key == key).values(**values)
            )

    async def awaiting_outcome(
        self, now: datetime, *, older_than: timedelta, limit: int
    ) -> list[PlannedMessage]:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(warmup_messages)
                    .where(
                        warmup_messages.c.status == MessageStatus.SUBMITTED.value,
                        warmup_messages.c.updated_at <= now - older_than,
                    )
                    .order_by(warmup_messages.c.updated_at)
                    .limit(limit)
                )
            ).all()
        return [_message(r) for r in rows]


def _time(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)


def _row(message: PlannedMessage, now: datetime) -> dict[str, Any]:
    return {
        "idempotency_key": message.idempotency_key,
        "organization_id": message.organization_id,
        "instance_id": message.instance_id,
        "day": message.day,
        "conversation": message.conversation,
        "role": message.role.value,
        "due_at": message.due_at,
        "sender_instance_id": message.sender_instance_id,
        "partner_instance_id": message.partner.instance_id,
        "partner_phone": message.partner.phone,
        "target_phone": message.target_phone,
        "text": message.text,
        "status": message.status.value,
        "lease_until": None,
        "intent_id": message.intent_id,
        "gate_instance_id": message.gate_instance_id,
        "reason": message.reason,
        "submitted_at": message.submitted_at,
        "updated_at": now,
    }


def _message(row: Any) -> PlannedMessage:
    return PlannedMessage(
        idempotency_key=row.idempotency_key,
        organization_id=row.organization_id,
        instance_id=row.instance_id,
        day=row.day,
        conversation=row.conversation,
        role=MessageRole(row.role),
        due_at=row.due_at,
        sender_instance_id=row.sender_instance_id,
        partner=Partner(phone=row.partner_phone, instance_id=row.partner_instance_id),
        target_phone=row.target_phone,
        text=row.text,
        status=MessageStatus(row.status),
        intent_id=row.intent_id,
        gate_instance_id=row.gate_instance_id,
        reason=row.reason,
        submitted_at=row.submitted_at,
    )
