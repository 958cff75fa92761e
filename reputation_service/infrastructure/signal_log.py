"""The signal log in PostgreSQL: facts inserted once (ON CONFLICT DO NOTHING on the fact key), bucket
counters added with one upsert per batch, windows summed over a primary-key range scan."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    DateTime,
    Delete,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from libs.seedwork.clock import Clock
from reputation_service.domain.ports import PruneBefore
from reputation_service.domain.signals import (
    COUNTER_NAMES,
    BucketKey,
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
        # In fact-key order: two batches (another process's consumer) reporting the same facts never wait
        # on each other's index entries in a circle.
        signals = sorted(signals, key=lambda s: s.fact_key)
        # The rows as one JSON document (see _rows), not a bind parameter per value.
        rows = [
            {
                "fact_key": s.fact_key,
                "kind": s.kind.value,
                "instance_id": s.instance_id,
                "organization_id": s.organization_id,
                "occurred_at": _utc(s.occurred_at),
                "source": s.source.value,
                "provider_message_id": s.provider_message_id,
                "message_key": s.message_key,
                "is_group": s.is_group,
                "ack_latency_ms": s.ack_latency_ms,
            }
            for s in signals
        ]
        result = await self._session.execute(
            _INSERT_SIGNALS, {"rows": _rows(rows), "recorded_at": _utc(recorded_at)}
        )
        return set(result.scalars().all())

    async def set_ack_latencies(self, latencies: Mapping[str, int]) -> None:
        if not latencies:
            return
        await self._session.execute(
            _SET_LATENCIES, {"fact_key": list(latencies), "latency": list(latencies.values())}
        )

    async def claim_messages(
        self, keys: Collection[tuple[str, str]], *, first_seen_at: datetime
    ) -> dict[tuple[str, str], TrackedMessage]:
        if not keys:
            return {}
        ordered = sorted(keys)
        keyed = _rows(
            [
                {"instance_id": instance_id, "message_key": key, "position": position}
                for position, (instance_id, key) in enumerate(ordered)
            ]
        )
        # Created if missing (a concurrent creator makes this wait for its commit), then locked in order.
        await self._session.execute(_CLAIM_MESSAGES, {"rows": keyed, "first_seen_at": _utc(first_seen_at)})
        # The keys as one parameter again, not a row-value IN of two parameters each: building and parsing
        # that list was the batch's costliest statement for the driver.
        rows = await self._session.execute(_LOCK_MESSAGES, {"rows": keyed})
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
        # The rows exist and are locked (claim_messages): one update from one document, in the locks' order.
        ordered = sorted(messages, key=lambda m: (m.instance_id, m.message_key))
        rows = [
            {
                "instance_id": m.instance_id,
                "message_key": m.message_key,
                "job_id": m.job_id,
                "attempts": m.attempts,
                "sent_at": _utc_or_none(m.sent_at),
                "delivered_at": _utc_or_none(m.delivered_at),
                "answered": m.answered,
                "latency_ms": m.latency_ms,
            }
            for m in ordered
        ]
        await self._session.execute(_SAVE_MESSAGES, {"rows": _rows(rows)})

    async def add_counts(self, deltas: CounterDeltas) -> None:
        keys: list[BucketKey] = []
        sums: list[tuple[int, ...]] = []
        for key, values in deltas.sums():  # in the one order every writer locks buckets in
            keys.append(key)
            sums.append(values)
        if not keys:
            return
        # One document (see _rows); the rows are upserted in its order.
        rows = [
            {
                "position": position,
                "instance_id": key.instance_id,
                "granularity": int(key.granularity),
                "bucket_start": _utc(key.start),
                **dict(zip(_COLUMNS, values, strict=True)),
            }
            for position, (key, values) in enumerate(zip(keys, sums, strict=True))
        ]
        await self._session.execute(_UPSERT_BUCKETS, {"rows": _rows(rows)})

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


def _utc(at: datetime) -> datetime:
    # What UtcDateTime does for a bound column, for the values sent as arrays.
    if at.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return at.astimezone(UTC)


def _utc_or_none(at: datetime | None) -> datetime | None:
    return None if at is None else _utc(at)


def _rows(rows: list[dict[str, Any]]) -> str:
    """A batch's rows as one JSON document for json_to_recordset: encoded by orjson in C (times in RFC 3339
    with their offset). An array per column (unnest) cost the driver ~10 µs a value to build in Python;
    this costs well under 1."""
    return orjson.dumps(rows).decode()


def _recordset(columns: Sequence[tuple[str, str]], alias: str) -> str:
    """The rows of the :rows document, typed: `json_to_recordset(...) AS alias(name type, ...)`."""
    return (
        f"json_to_recordset(CAST(:rows AS json)) AS {alias}("
        + ", ".join(f"{name} {sql_type}" for name, sql_type in columns)
        + ")"
    )


_SIGNAL_COLUMNS = (
    ("fact_key", "text"),
    ("kind", "text"),
    ("instance_id", "text"),
    ("organization_id", "text"),
    ("occurred_at", "timestamptz"),
    ("source", "text"),
    ("provider_message_id", "text"),
    ("message_key", "text"),
    ("is_group", "boolean"),
    ("ack_latency_ms", "bigint"),
)
_INSERT_SIGNALS = text(
    "INSERT INTO signals (fact_key, kind, instance_id, organization_id, occurred_at, recorded_at, source,"
    " provider_message_id, message_key, is_group, ack_latency_ms)"
    " SELECT fact_key, kind, instance_id, organization_id, occurred_at, :recorded_at, source,"
    " provider_message_id, message_key, is_group, ack_latency_ms FROM "
    + _recordset(_SIGNAL_COLUMNS, "s")
    + " ON CONFLICT DO NOTHING RETURNING fact_key"
).bindparams(bindparam("recorded_at", type_=DateTime(timezone=True)))

_SET_LATENCIES = text(
    "UPDATE signals SET ack_latency_ms = l.latency"
    " FROM unnest(CAST(:fact_key AS text[]), CAST(:latency AS bigint[])) AS l(fact_key, latency)"
    " WHERE signals.fact_key = l.fact_key"
)
_MESSAGE_KEYS = (("instance_id", "text"), ("message_key", "text"), ("position", "integer"))
_CLAIM_MESSAGES = text(
    "INSERT INTO signal_messages (instance_id, message_key, job_id, attempts, first_seen_at, answered)"
    " SELECT instance_id, message_key, '', 0, :first_seen_at, false FROM "
    + _recordset(_MESSAGE_KEYS, "m")
    + " ORDER BY position ON CONFLICT DO NOTHING"
).bindparams(bindparam("first_seen_at", type_=DateTime(timezone=True)))
_LOCK_MESSAGES = text(
    "SELECT "
    + ", ".join(f"signal_messages.{column.name}" for column in signal_messages.c)
    + " FROM signal_messages JOIN "
    + _recordset(_MESSAGE_KEYS, "k")
    + " ON signal_messages.instance_id = k.instance_id AND signal_messages.message_key = k.message_key"
    " ORDER BY signal_messages.instance_id, signal_messages.message_key FOR UPDATE OF signal_messages"
).columns(*signal_messages.c)
_MESSAGE_COLUMNS = (
    ("instance_id", "text"),
    ("message_key", "text"),
    ("job_id", "text"),
    ("attempts", "integer"),
    ("sent_at", "timestamptz"),
    ("delivered_at", "timestamptz"),
    ("answered", "boolean"),
    ("latency_ms", "bigint"),
)
_SAVE_MESSAGES = text(
    "UPDATE signal_messages SET job_id = m.job_id, attempts = m.attempts, sent_at = m.sent_at,"
    " delivered_at = m.delivered_at, answered = m.answered, latency_ms = m.latency_ms FROM "
    + _recordset(_MESSAGE_COLUMNS, "m")
    + " WHERE signal_messages.instance_id = m.instance_id AND signal_messages.message_key = m.message_key"
)

_BUCKET_COLUMNS = (
    ("instance_id", "text"),
    ("granularity", "smallint"),
    ("bucket_start", "timestamptz"),
    *((name, "bigint") for name in _COLUMNS),
)
_UPSERT_BUCKETS = text(
    f"INSERT INTO signal_buckets ({', '.join(name for name, _ in _BUCKET_COLUMNS)})"
    f" SELECT {', '.join(name for name, _ in _BUCKET_COLUMNS)} FROM "
    + _recordset((*_BUCKET_COLUMNS, ("position", "integer")), "b")
    + " ORDER BY position"
    " ON CONFLICT (instance_id, granularity, bucket_start) DO UPDATE SET "
    + ", ".join(f"{name} = signal_buckets.{name} + excluded.{name}" for name in _COLUMNS)
)


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
