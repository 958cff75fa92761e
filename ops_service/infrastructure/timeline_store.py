"""PostgreSQL storage of the timeline facts and the execution counters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    Table,
    and_,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.messaging import envelope
from ops_service.application.timeline_ports import HourRow, Related, SentMessage, StoredFact
from ops_service.domain.execution_counts import HOUR, MINUTE, CounterDelta, CounterRow, merged
from ops_service.domain.timeline import TimelineRecord
from ops_service.infrastructure.tables import timeline
from ops_service.infrastructure.timeline_mapping import record_from_event
from whatlead.events.v1 import ops_events_pb2
from whatlead.ops.v1 import ops_pb2

_E = timeline.events
_C = timeline.counters
INTENT_CREATED = "whatlead.events.v1.IntentCreated"
INTENT_APPROVED = "whatlead.events.v1.IntentApproved"
COOLDOWN_STARTED = "whatlead.events.v1.CooldownStarted"
CONTROL_CHANGED = "whatlead.events.v1.ExecutionControlChanged"
PROVIDER_EVENT = "whatlead.events.v1.ProviderEventReceived"
MESSAGE_SENT = "whatlead.events.v1.MessageSent"
# The Executor's facts about an intent that make a change (ops_service.domain.intent_changes).
EXECUTOR_CHANGES = (
    MESSAGE_SENT,
    "whatlead.events.v1.MessageFailed",
    "whatlead.events.v1.MessageRetryScheduled",
    "whatlead.events.v1.MessageNeedsReview",
    "whatlead.events.v1.MessageDeliveryStatusChanged",
)
# Transaction-level advisory locks, taken in one statement in the order of their keys' hashes.
_SERIALIZE = text(
    "SELECT pg_advisory_xact_lock(h) FROM "
    "(SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest(CAST(:keys AS text[])) AS k) AS keys ORDER BY h"
)
_RESOLUTIONS = {MINUTE: 1, HOUR: 60}
_COLUMNS = [
    _E.c.event_id,
    _E.c.type_name,
    _E.c.subject,
    _E.c.organization_id,
    _E.c.aggregate_id,
    _E.c.correlation_id,
    _E.c.occurred_at,
    _E.c.actor,
    _E.c.instance_id,
    _E.c.campaign_id,
    _E.c.scope,
    _E.c.remote_phone,
    _E.c.provider_message_id,
    _E.c.summary,
    _E.c.payload,
    _E.c.sequence,
]


def _row(record: TimelineRecord) -> dict[str, Any]:
    r = record.recorded
    return {
        "event_id": r.event_id,
        "type_name": r.type_name,
        "subject": r.subject,
        "organization_id": r.organization_id,
        "aggregate_id": r.aggregate_id,
        "correlation_id": r.correlation_id,
        "occurred_at": r.occurred_at,
        "actor": r.actor,
        "instance_id": record.instance_id,
        "campaign_id": record.campaign_id,
        "scope": record.scope,
        "remote_phone": record.remote_phone,
        "provider_message_id": record.provider_message_id,
        "summary": record.summary,
        "payload": r.payload,
    }


def _fact(row: Any) -> StoredFact:
    return StoredFact(**row._mapping)


def _decoded(row: Any) -> TimelineRecord:
    """A stored fact as it was recorded, read back from its event."""
    return record_from_event(envelope.decode(str(row[0]), bytes(row[1])))


def _paused(fact: StoredFact) -> bool:
    """A kill-switch change that paused its scope."""
    changed = ops_events_pb2.ExecutionControlChanged.FromString(fact.payload)
    return changed.control.status == ops_pb2.CONTROL_STATUS_PAUSED


class SqlAlchemyTimelineStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(self, records: Sequence[TimelineRecord]) -> list[TimelineRecord]:
        if not records:
            return []
        statement = (
            pg_insert(_E)
            .values([_row(record) for record in records])
            .on_conflict_do_nothing(index_elements=[_E.c.event_id])
            .returning(_E.c.event_id)
        )
        fresh = set((await self._session.scalars(statement)).all())
        kept = []
        for record in records:  # the same event twice in one batch: recorded (and counted) once
            if record.recorded.event_id in fresh:
                fresh.discard(record.recorded.event_id)
                kept.append(record)
        return kept

    async def submitted_at(self, intent_ids: Sequence[str]) -> dict[str, datetime]:
        statement = select(_E.c.correlation_id, func.min(_E.c.occurred_at)).where(
            _E.c.correlation_id.in_(list(set(intent_ids))), _E.c.type_name == INTENT_CREATED
        )
        rows = await self._session.execute(statement.group_by(_E.c.correlation_id))
        return {str(row[0]): row[1] for row in rows.all()}

    async def add_counters(self, deltas: Sequence[CounterDelta]) -> None:
        rows = []
        for resolution, minutes in _RESOLUTIONS.items():
            for (org, instance, bucket, metric, label), (count, total, peak) in merged(
                deltas, resolution
            ).items():
                rows.append(
                    {
                        "organization_id": org,
                        "resolution": minutes,
                        "bucket_start": bucket,
                        "instance_id": instance,
                        "metric": metric,
                        "label": label,
                        "count": count,
                        "total": total,
                        "peak": peak,
                    }
                )
        # One order for every writer (the consumers of five streams add to the same rows): no deadlocks.
        rows.sort(
            key=lambda row: tuple(
                str(row[k])
                for k in ("organization_id", "resolution", "bucket_start", "instance_id", "metric", "label")
            )
        )
        statement = pg_insert(_C).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[
                _C.c.organization_id,
                _C.c.resolution,
                _C.c.bucket_start,
                _C.c.instance_id,
                _C.c.metric,
                _C.c.label,
            ],
            set_={
                "count": _C.c.count + statement.excluded.count,
                "total": _C.c.total + statement.excluded.total,
                "peak": func.greatest(_C.c.peak, statement.excluded.peak),
            },
        )
        await self._session.execute(statement)

    # ---- intent changes (ops_service.application.intent_changes) ----

    async def serialize(self, keys: Sequence[str]) -> None:
        await self._session.execute(_SERIALIZE, {"keys": list(keys)})

    async def approved(self, intent_ids: Sequence[str]) -> set[str]:
        statement = select(_E.c.correlation_id).where(
            _E.c.correlation_id.in_(list(intent_ids)), _E.c.type_name == INTENT_APPROVED
        )
        rows = (await self._session.execute(statement.distinct())).all()
        return {str(row[0]) for row in rows}

    async def campaigns(self, intent_ids: Sequence[str]) -> dict[str, str]:
        if not intent_ids:
            return {}
        statement = select(_E.c.correlation_id, _E.c.campaign_id).where(
            _E.c.correlation_id.in_(list(intent_ids)), _E.c.type_name == INTENT_CREATED
        )
        return {str(row[0]): str(row[1]) for row in (await self._session.execute(statement)).all()}

    async def executor_facts(self, intent_ids: Sequence[str]) -> list[TimelineRecord]:
        statement = (
            select(_E.c.type_name, _E.c.payload)
            .where(_E.c.correlation_id.in_(list(intent_ids)), _E.c.type_name.in_(EXECUTOR_CHANGES))
            .order_by(_E.c.sequence)
        )
        return [_decoded(row) for row in (await self._session.execute(statement)).all()]

    async def sent_by(self, messages: Sequence[SentMessage]) -> dict[SentMessage, str]:
        wanted = set(messages)
        statement = select(_E.c.instance_id, _E.c.provider_message_id, _E.c.correlation_id).where(
            _E.c.provider_message_id.in_(sorted({m for _, m in wanted})),
            _E.c.provider_message_id != "",
            _E.c.type_name == MESSAGE_SENT,
        )
        rows = (await self._session.execute(statement)).all()
        return {(str(r[0]), str(r[1])): str(r[2]) for r in rows if (str(r[0]), str(r[1])) in wanted}

    async def replies_to(self, messages: Sequence[SentMessage]) -> list[TimelineRecord]:
        wanted = set(messages)
        statement = (
            select(_E.c.type_name, _E.c.payload, _E.c.instance_id, _E.c.provider_message_id)
            .where(
                _E.c.provider_message_id.in_(sorted({m for _, m in wanted})),
                _E.c.provider_message_id != "",
                _E.c.type_name == PROVIDER_EVENT,
            )
            .order_by(_E.c.sequence)
        )
        rows = (await self._session.execute(statement)).all()
        return [_decoded(row) for row in rows if (str(row[2]), str(row[3])) in wanted]

    async def correlated(self, correlation_id: str) -> list[StoredFact]:
        rows = await self._session.execute(select(*_COLUMNS).where(_E.c.correlation_id == correlation_id))
        return [_fact(row) for row in rows]

    async def related(self, related: Related) -> list[StoredFact]:
        """One statement: each kind of related fact through its own index."""
        parts = []
        life = and_(_E.c.occurred_at >= related.since, _E.c.occurred_at <= related.until)
        scopes = [_E.c.scope == "ORGANIZATION"]
        if related.instance_ids:
            instances = list(related.instance_ids)
            parts.append(
                select(*_COLUMNS).where(
                    _E.c.instance_id.in_(instances), _E.c.type_name == COOLDOWN_STARTED, life
                )
            )
            scopes.append(and_(_E.c.scope == "INSTANCE", _E.c.instance_id.in_(instances)))
        if related.campaign_id:
            scopes.append(and_(_E.c.scope == "CAMPAIGN", _E.c.campaign_id == related.campaign_id))
        parts.append(
            select(*_COLUMNS).where(
                _E.c.organization_id == related.organization_id, _E.c.scope != "", life, or_(*scopes)
            )
        )
        # The pause in force when the intent came (the one that blocked or held it) touched it too: the
        # last change of each of its scopes before its life, kept below only if it paused.
        parts += [
            select(*_COLUMNS)
            .where(
                _E.c.organization_id == related.organization_id,
                _E.c.scope != "",
                _E.c.occurred_at < related.since,
                scope,
            )
            .order_by(_E.c.occurred_at.desc())
            .limit(1)
            for scope in scopes
        ]
        if related.provider_message_ids and related.instance_ids:
            parts.append(
                select(*_COLUMNS).where(
                    _E.c.provider_message_id.in_(list(related.provider_message_ids)),
                    _E.c.provider_message_id != "",
                    _E.c.type_name == PROVIDER_EVENT,
                    _E.c.instance_id.in_(list(related.instance_ids)),
                )
            )
        if related.target_phone and related.instance_ids and related.replies_since and related.replies_until:
            replies_until = related.replies_until
            same_chat = and_(
                _E.c.instance_id.in_(list(related.instance_ids)),
                _E.c.remote_phone == related.target_phone,
                _E.c.instance_id != "",
                _E.c.remote_phone != "",
            )
            if related.approved_at is not None:
                # The next intent to the same contact on the same number: its replies are its own.
                following = (
                    select(func.min(_E.c.occurred_at))
                    .where(
                        same_chat, _E.c.type_name == INTENT_APPROVED, _E.c.occurred_at > related.approved_at
                    )
                    .scalar_subquery()
                )
                bound: ColumnElement[datetime] = func.least(
                    func.coalesce(following, replies_until), replies_until
                )
            else:
                bound = literal(replies_until, _E.c.occurred_at.type)
            parts.append(
                select(*_COLUMNS)
                .where(
                    same_chat,
                    _E.c.type_name == PROVIDER_EVENT,
                    _E.c.occurred_at >= related.replies_since,
                    _E.c.occurred_at <= bound,
                )
                .order_by(_E.c.occurred_at)
                .limit(related.max_replies)
            )
        statement = union_all(*(part.subquery().select() for part in parts)) if len(parts) > 1 else parts[0]
        rows = await self._session.execute(statement)
        facts = [_fact(row) for row in rows]
        return [f for f in facts if f.occurred_at >= related.since or _paused(f)]

    async def counters(
        self, organization_id: str, since: datetime, resolution: timedelta, instance_id: str | None = None
    ) -> list[CounterRow]:
        statement = select(
            _C.c.instance_id,
            _C.c.metric,
            _C.c.label,
            func.sum(_C.c.count),
            func.sum(_C.c.total),
            func.max(_C.c.peak),
        ).where(
            _C.c.organization_id == organization_id,
            _C.c.resolution == _RESOLUTIONS[resolution],
            _C.c.bucket_start >= since,
        )
        if instance_id is not None:
            statement = statement.where(_C.c.instance_id == instance_id)
        rows = await self._session.execute(statement.group_by(_C.c.instance_id, _C.c.metric, _C.c.label))
        return [
            CounterRow(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows.all()
        ]

    async def hours(self, organization_id: str, instance_id: str, since: datetime) -> list[HourRow]:
        statement = select(_C.c.bucket_start, _C.c.metric, func.sum(_C.c.count)).where(
            _C.c.organization_id == organization_id,
            _C.c.resolution == _RESOLUTIONS[HOUR],
            _C.c.instance_id == instance_id,
            _C.c.bucket_start >= since,
        )
        rows = await self._session.execute(statement.group_by(_C.c.bucket_start, _C.c.metric))
        return [HourRow(row[0], str(row[1]), int(row[2])) for row in rows.all()]

    async def prune_events(self, before: datetime, *, limit: int) -> int:
        return await self._prune(_E, _E.c.occurred_at < before, limit)

    async def prune_counters(self, resolution: timedelta, before: datetime, *, limit: int) -> int:
        return await self._prune(
            _C, and_(_C.c.resolution == _RESOLUTIONS[resolution], _C.c.bucket_start < before), limit
        )

    async def _prune(self, table: Table, old: ColumnElement[bool], limit: int) -> int:
        """Delete up to `limit` rows matching `old`. The rows are found through the index on their time and
        deleted by their physical address (a TID scan: the cost is the batch, not the table). Rows
        another transaction holds (another replica pruning, a consumer adding a late fact to an old
        bucket) are skipped, not waited for; locking the rest keeps their addresses until the delete."""
        ctid: ColumnElement[Any] = literal_column("ctid")
        oldest = select(ctid).select_from(table).where(old).limit(limit).with_for_update(skip_locked=True)
        return await self._delete(delete(table).where(ctid == func.any(func.array(oldest.scalar_subquery()))))

    async def _delete(self, statement: Delete) -> int:
        # On the session's connection: its result is a CursorResult, with a rowcount.
        connection = await self._session.connection()
        return int((await connection.execute(statement)).rowcount or 0)
