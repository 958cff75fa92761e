"""The signal log in PostgreSQL: facts inserted once (ON CONFLICT DO NOTHING on the fact key), bucket
counters added with one upsert per batch, windows summed over a primary-key range scan."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Delete, and_, bindparam, case, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.db.types import UtcDateTime
from libs.seedwork.clock import Clock
from reputation_service.domain.ports import PruneBefore
from reputation_service.domain.signals import (
    COUNTER_NAMES,
    BucketTotals,
    CounterDeltas,
    Counts,
    Granularity,
    Signal,
    TrackedMessage,
    WindowPlan,
)
from reputation_service.infrastructure.tables import ACK_BIN_COLUMNS, signal_buckets, signal_messages
from reputation_service.infrastructure.tables import signals as signals_table

_COLUMNS = (*COUNTER_NAMES, *ACK_BIN_COLUMNS)


class SqlAlchemySignalLog:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self._session = session
        self._clock = clock

    async def add_new(self, signals: Sequence[Signal]) -> set[str]:
        if not signals:
            return set()
        recorded_at = self._clock.now()
        rows = [
            {
                "fact_key": signal.fact_key,
                "kind": signal.kind.value,
                "instance_id": signal.instance_id,
                "organization_id": signal.organization_id,
                "occurred_at": signal.occurred_at,
                "recorded_at": recorded_at,
                "source": signal.source.value,
                "provider_message_id": signal.provider_message_id,
                "message_key": signal.message_key,
                "is_group": signal.is_group,
                "ack_latency_ms": signal.ack_latency_ms,
            }
            for signal in signals
        ]
        statement = pg_insert(signals_table).on_conflict_do_nothing().returning(signals_table.c.fact_key)
        return set((await self._session.scalars(statement, rows)).all())

    async def set_ack_latencies(self, latencies: Mapping[str, int]) -> None:
        if not latencies:
            return
        connection = await self._session.connection()
        await connection.execute(
            update(signals_table)
            .where(signals_table.c.fact_key == bindparam("key"))
            .values(ack_latency_ms=bindparam("latency")),
            [{"key": key, "latency": latency} for key, latency in latencies.items()],
        )

    async def claim_messages(
        self, keys: Collection[tuple[str, str]], *, first_seen_at: datetime
    ) -> dict[tuple[str, str], TrackedMessage]:
        if not keys:
            return {}
        ordered = sorted(keys)
        # Created if missing (a concurrent creator makes this wait for its commit), then locked in order.
        await self._session.execute(
            pg_insert(signal_messages).on_conflict_do_nothing(),
            [
                {
                    "instance_id": instance_id,
                    "message_key": key,
                    "job_id": "",
                    "attempts": 0,
                    "first_seen_at": first_seen_at,
                    "answered": False,
                }
                for instance_id, key in ordered
            ],
        )
        pair = tuple_(signal_messages.c.instance_id, signal_messages.c.message_key)
        rows = await self._session.execute(
            select(signal_messages)
            .where(pair.in_(ordered))
            .order_by(signal_messages.c.instance_id, signal_messages.c.message_key)
            .with_for_update()
        )
        return {(row.instance_id, row.message_key): _to_message(row) for row in rows}

    async def messages_of_jobs(
        self, jobs: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], TrackedMessage]:
        if not jobs:
            return {}
        job = tuple_(signal_messages.c.instance_id, signal_messages.c.job_id)
        rows = await self._session.execute(
            select(signal_messages)
            .where(job.in_(sorted(jobs)), signal_messages.c.job_id != "")
            .order_by(signal_messages.c.attempts)
        )
        return {(row.instance_id, row.job_id): _to_message(row) for row in rows}  # the last round wins

    async def save_messages(self, messages: Sequence[TrackedMessage]) -> None:
        if not messages:
            return
        # The rows exist and are locked (claim_messages): an update each, in one round trip.
        connection = await self._session.connection()
        await connection.execute(
            update(signal_messages)
            .where(
                signal_messages.c.instance_id == bindparam("b_instance_id"),
                signal_messages.c.message_key == bindparam("b_message_key"),
            )
            .values(
                job_id=bindparam("b_job_id"),
                attempts=bindparam("b_attempts"),
                sent_at=bindparam("b_sent_at", type_=UtcDateTime),
                delivered_at=bindparam("b_delivered_at", type_=UtcDateTime),
                answered=bindparam("b_answered"),
                latency_ms=bindparam("b_latency_ms"),
            ),
            [
                {
                    "b_instance_id": m.instance_id,
                    "b_message_key": m.message_key,
                    "b_job_id": m.job_id,
                    "b_attempts": m.attempts,
                    "b_sent_at": m.sent_at,
                    "b_delivered_at": m.delivered_at,
                    "b_answered": m.answered,
                    "b_latency_ms": m.latency_ms,
                }
                for m in messages
            ],
        )

    async def add_counts(self, deltas: CounterDeltas) -> None:
        rows = [
            {
                "instance_id": key.instance_id,
                "granularity": int(key.granularity),
                "bucket_start": key.start,
                **_counter_values(counts),
            }
            for key, counts in deltas.items()
        ]
        if not rows:
            return
        statement = pg_insert(signal_buckets)
        statement = statement.on_conflict_do_update(
            index_elements=["instance_id", "granularity", "bucket_start"],
            set_={name: signal_buckets.c[name] + statement.excluded[name] for name in _COLUMNS},
        )
        await self._session.execute(statement, rows)

    async def totals(self, instance_id: str, plan: WindowPlan) -> BucketTotals:
        if not plan.ranges:
            return BucketTotals(counts=Counts(), unanswered_timed_out=0)
        in_window = or_(
            *(
                and_(
                    signal_buckets.c.granularity == int(r.granularity),
                    signal_buckets.c.bucket_start >= r.start,
                    signal_buckets.c.bucket_start < r.end,
                )
                for r in plan.ranges
            )
        )
        timed_out = or_(
            *(
                and_(
                    signal_buckets.c.granularity == int(granularity),
                    signal_buckets.c.bucket_start <= plan.timed_out_before - timedelta(seconds=granularity),
                )
                for granularity in Granularity
            )
        )
        unanswered = func.sum(case((timed_out, signal_buckets.c.sent - signal_buckets.c.answered), else_=0))
        row = (
            await self._session.execute(
                select(
                    *(func.coalesce(func.sum(signal_buckets.c[name]), 0) for name in _COLUMNS),
                    func.coalesce(unanswered, 0),
                ).where(signal_buckets.c.instance_id == instance_id, in_window)
            )
        ).one()
        values = [int(value) for value in row]
        counters = dict(zip(COUNTER_NAMES, values, strict=False))
        bins = tuple(values[len(COUNTER_NAMES) : len(_COLUMNS)])
        return BucketTotals(counts=Counts(**counters, latency_bins=bins), unanswered_timed_out=values[-1])

    async def prune(self, retention: PruneBefore, *, limit: int) -> int:
        log = signals_table
        oldest_signals = select(log.c.fact_key).where(log.c.recorded_at < retention.signals).limit(limit)
        deleted = await self._delete(delete(log).where(log.c.fact_key.in_(oldest_signals.scalar_subquery())))
        message = tuple_(signal_messages.c.instance_id, signal_messages.c.message_key)
        oldest_messages = select(signal_messages.c.instance_id, signal_messages.c.message_key).where(
            signal_messages.c.first_seen_at < retention.signals
        )
        deleted += await self._delete(
            delete(signal_messages).where(message.in_(oldest_messages.limit(limit)))
        )
        bucket_columns = (
            signal_buckets.c.instance_id,
            signal_buckets.c.granularity,
            signal_buckets.c.bucket_start,
        )
        for granularity, before in (
            (Granularity.MINUTE, retention.minute_buckets),
            (Granularity.HOUR, retention.hour_buckets),
        ):
            oldest = (
                select(*bucket_columns)
                .where(
                    signal_buckets.c.granularity == int(granularity), signal_buckets.c.bucket_start < before
                )
                .limit(limit)
            )
            deleted += await self._delete(delete(signal_buckets).where(tuple_(*bucket_columns).in_(oldest)))
        return deleted

    async def _delete(self, statement: Delete) -> int:
        # On the session's connection: its result is a CursorResult, with a rowcount.
        connection = await self._session.connection()
        return int((await connection.execute(statement)).rowcount or 0)


def _counter_values(counts: Counts) -> dict[str, int]:
    values = {name: getattr(counts, name) for name in COUNTER_NAMES}
    values.update(zip(ACK_BIN_COLUMNS, counts.latency_bins, strict=True))
    return values


def _to_message(row: Any) -> TrackedMessage:
    return TrackedMessage(
        instance_id=row.instance_id,
        message_key=row.message_key,
        first_seen_at=row.first_seen_at,
        job_id=row.job_id,
        attempts=row.attempts,
        sent_at=row.sent_at,
        delivered_at=row.delivered_at,
        answered=row.answered,
        latency_ms=row.latency_ms,
    )
