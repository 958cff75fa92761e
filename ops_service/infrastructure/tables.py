"""The ops database: organizations, members, API keys, execution controls, plans and the audit log, plus
the outbox and inbox every publishing service has."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from libs.db.types import UtcDateTime
from libs.messaging.tables import messaging_tables
from ops_service.infrastructure.timeline_tables import timeline_tables

metadata = MetaData()
messaging = messaging_tables(metadata)
timeline = timeline_tables(metadata)  # the timeline's facts and the execution counters (timeline_tables.py)

ID = 36  # UUIDv7 ids this service makes
ORGANIZATION_ID = 64  # organization ids as every service stores them (this service makes UUIDs)
ACTOR = 300  # "key:<id>" or "service", with the operator's own name (up to 200) beside it
ROLE = 10
SCOPE = 20

organizations = Table(
    "organizations",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Each row has an id of its own, so members page like everything else (user ids are the caller's text).
members = Table(
    "members",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("organization_id", String(ORGANIZATION_ID), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("role", String(ROLE), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("organization_id", "user_id", name="uq_members_user"),
)
Index("ix_members_org_id", members.c.organization_id, members.c.id)

# The secret itself is never stored: its SHA-256 only (docs/adr/0046-api-keys.md).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("organization_id", String(ORGANIZATION_ID), nullable=False),
    Column("name", String(100), nullable=False),
    Column("role", String(ROLE), nullable=False),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("secret_sha256", LargeBinary(32), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("created_by", String(ACTOR), nullable=False),
)
Index("ix_api_keys_org_id", api_keys.c.organization_id, api_keys.c.id)

# The kill-switch as ops owns it: one row per scope ever paused, the newest state with its version.
controls = Table(
    "controls",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("organization_id", String(ORGANIZATION_ID), nullable=False),
    Column("scope", String(SCOPE), nullable=False),
    Column("scope_id", String(64), nullable=False),
    Column("status", String(10), nullable=False),
    Column("reason", String(20), nullable=False),
    Column("note", Text, nullable=False),
    Column("actor", String(ACTOR), nullable=False),
    Column("paused_until", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", BigInteger, nullable=False),
    UniqueConstraint("organization_id", "scope", "scope_id", name="uq_controls_scope"),
)
Index("ix_controls_org_id", controls.c.organization_id, controls.c.id)
# Most scopes are active most of the time; the reads that matter are "every paused one" and "timed ones".
Index("ix_controls_paused", controls.c.id, postgresql_where=text("status = 'PAUSED'"))
Index(
    "ix_controls_paused_until",
    controls.c.paused_until,
    postgresql_where=text("status = 'PAUSED' AND paused_until IS NOT NULL"),
)

plans = Table(
    "plans",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("organization_id", String(ORGANIZATION_ID), nullable=False, unique=True),
    Column("name", String(64), nullable=False),
    Column("daily_message_cap", BigInteger, nullable=False),
    Column("monthly_message_cap", BigInteger, nullable=False),
    Column("max_instances", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", BigInteger, nullable=False),
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("organization_id", String(ORGANIZATION_ID), nullable=False),
    Column("actor", String(ACTOR), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=False),
    Column("summary", Text, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
)
Index("ix_audit_entries_org_id", audit_entries.c.organization_id, audit_entries.c.id)
