"""Ops' read model of every context: the timeline of facts and the execution counters.

`timeline_events` holds each event once (its event id is the key, so a redelivery adds nothing: it is also
the consumers' inbox), with the columns that find it from an intent. `execution_counters` holds the
metrics as per-minute and per-hour buckets (resolution 1 or 60 minutes).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

from libs.db.types import UtcDateTime


@dataclass(frozen=True)
class TimelineTables:
    events: Table
    counters: Table


def timeline_tables(metadata: MetaData) -> TimelineTables:
    timeline_events = Table(
        "timeline_events",
        metadata,
        Column("event_id", String(64), primary_key=True),
        # The order facts were recorded in: keeps ties of occurred_at in stream order.
        Column("sequence", BigInteger, Identity(always=False), nullable=False),
        Column("type_name", String(200), nullable=False),
        Column("subject", String(200), nullable=False),
        Column("organization_id", String(64), nullable=False),
        Column("aggregate_id", String(64), nullable=False),
        Column("correlation_id", String(64), nullable=False),
        Column("occurred_at", UtcDateTime, nullable=False),
        Column("actor", Text, nullable=False),
        Column("instance_id", String(64), nullable=False),
        Column("campaign_id", String(64), nullable=False),
        Column("scope", String(16), nullable=False),  # control changes: INSTANCE, ORGANIZATION, CAMPAIGN
        Column("remote_phone", String(64), nullable=False),  # an intent's target; a reply's sender
        Column("provider_message_id", String(200), nullable=False),  # our message it is about
        Column("summary", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),
    )
    # An intent's own facts.
    Index("ix_timeline_events_correlation", timeline_events.c.correlation_id, timeline_events.c.occurred_at)
    # Cooldowns (and anything else) of an instance over an intent's life.
    Index(
        "ix_timeline_events_instance",
        timeline_events.c.instance_id,
        timeline_events.c.type_name,
        timeline_events.c.occurred_at,
        postgresql_where=text("instance_id <> ''"),
    )
    # Replies: a contact's messages on an instance.
    Index(
        "ix_timeline_events_remote_phone",
        timeline_events.c.instance_id,
        timeline_events.c.remote_phone,
        timeline_events.c.occurred_at,
        postgresql_where=text("remote_phone <> '' AND instance_id <> ''"),
    )
    # Provider acks and quoting replies of one of our messages.
    Index(
        "ix_timeline_events_provider_message",
        timeline_events.c.provider_message_id,
        postgresql_where=text("provider_message_id <> ''"),
    )
    # Pauses and resumes of an organization's scopes.
    Index(
        "ix_timeline_events_controls",
        timeline_events.c.organization_id,
        timeline_events.c.occurred_at,
        postgresql_where=text("scope <> ''"),
    )
    # Retention: the oldest facts first.
    Index("ix_timeline_events_occurred_at", timeline_events.c.occurred_at)

    execution_counters = Table(
        "execution_counters",
        metadata,
        Column("organization_id", String(64), primary_key=True),
        Column("resolution", SmallInteger, primary_key=True),  # minutes per bucket: 1 or 60
        Column("bucket_start", UtcDateTime, primary_key=True),
        Column("instance_id", String(64), primary_key=True),  # "" for what belongs to no instance
        Column("metric", String(32), primary_key=True),
        Column("label", String(64), primary_key=True),
        Column("count", BigInteger, nullable=False),
        Column("total", BigInteger, nullable=False),
        Column("peak", BigInteger, nullable=False),
    )
    # Retention: the oldest buckets of a resolution first (the key leads with the organization).
    Index("ix_execution_counters_bucket", execution_counters.c.resolution, execution_counters.c.bucket_start)
    return TimelineTables(events=timeline_events, counters=execution_counters)
