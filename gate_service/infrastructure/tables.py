"""The gate database: intents with their latest decision, the projections' durable copy, outbox and inbox."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from libs.db.controls import execution_controls_table
from libs.db.types import UtcDateTime
from libs.messaging.tables import messaging_tables

metadata = MetaData()
messaging = messaging_tables(metadata)

intents = Table(
    "intents",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("organization_id", String(64), nullable=False),
    Column("target_kind", String(10), nullable=False),
    Column("target_value", String(64), nullable=False),
    Column("type", String(10), nullable=False),
    Column("purpose", String(10), nullable=False),
    Column("origin", String(20), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # JSON of the type's payload; never logged
    Column("idempotency_key", String(128), nullable=True),  # NULL when none: NULLs never clash
    Column("request_hash", String(32), nullable=False),
    Column("status", String(10), nullable=False),
    Column("decided_by_instance_id", String(36), nullable=True),
    Column("status_reason", String(40), nullable=True),
    Column("queued_until", UtcDateTime, nullable=True),
    Column("not_before", UtcDateTime, nullable=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("decided_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("decision", Text, nullable=True),  # JSON of the latest DecisionRecord
    Column("version", Integer, nullable=False),
    # The client's pin: every decision of the intent, re-decisions included, has this instance only.
    Column("pinned_instance_id", String(36), nullable=True),
    UniqueConstraint("organization_id", "idempotency_key", name="uq_intents_idempotency_key"),
)
# Listing is by (organization, id); each filter of ListIntents has its own narrow index.
Index("ix_intents_org_id", intents.c.organization_id, intents.c.id)
Index("ix_intents_org_status", intents.c.organization_id, intents.c.status, intents.c.id)
Index("ix_intents_org_instance", intents.c.organization_id, intents.c.decided_by_instance_id, intents.c.id)
Index("ix_intents_org_target", intents.c.organization_id, intents.c.target_value, intents.c.id)
Index("ix_intents_org_campaign", intents.c.organization_id, intents.c.campaign_id, intents.c.id)
# The scheduler only looks at QUEUED rows by due time.
Index(
    "ix_intents_queued_due",
    intents.c.queued_until,
    postgresql_where=text("status = 'QUEUED'"),
)

projected_instances = Table(
    "projected_instances",
    metadata,
    Column("instance_id", String(36), primary_key=True),
    Column("organization_id", String(64), nullable=False),
    Column("provider", String(20), nullable=False),
    Column("provider_instance_ref", String(200), nullable=False),
    Column("purposes", String(100), nullable=False),
    Column("connection_state", String(20), nullable=False),
    Column("instance_version", BigInteger, nullable=False),
    Column("score", Integer, nullable=True),
    Column("health", String(10), nullable=True),
    Column("phase", String(12), nullable=True),
    Column("cooldown_until", UtcDateTime, nullable=True),
    Column("reputation_version", BigInteger, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
    # E.164 digits, "" until known: an instance is never a candidate to send to its own phone.
    Column("phone", String(32), nullable=False, server_default=""),
)
Index("ix_projected_instances_changed", projected_instances.c.changed_at)

# The kill-switch projection, as the Executor keeps it too.
controls = execution_controls_table(metadata)

projected_plans = Table(
    "projected_plans",
    metadata,
    Column("organization_id", String(64), primary_key=True),
    Column("daily_cap", BigInteger, nullable=False),
    Column("monthly_cap", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
)
Index("ix_projected_plans_changed", projected_plans.c.changed_at)
