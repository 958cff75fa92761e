"""The executor database: jobs, the kill-switch projection, plus the outbox and inbox."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, MetaData, String, Table, Text, text

from libs.db.controls import execution_controls_table
from libs.db.types import UtcDateTime
from libs.messaging.tables import messaging_tables

metadata = MetaData()
messaging = messaging_tables(metadata)

jobs = Table(
    "execution_jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("intent_id", String(36), nullable=False, unique=True),  # one job per intent
    Column("organization_id", String(64), nullable=False),
    Column("instance_id", String(36), nullable=False),
    Column("provider", String(20), nullable=False),
    Column("provider_instance_ref", String(200), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("message", Text, nullable=False),  # JSON; a message body: never logged
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("attempts_base", Integer, nullable=False),
    Column("last_error", Text, nullable=True),  # JSON of the classified error
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_until", UtcDateTime, nullable=True),
    Column("lease_token", String(36), nullable=True),
    Column("client_message_id", String(64), nullable=True),
    Column("provider_message_id", String(200), nullable=True),
    Column("delivery_status", String(20), nullable=False),
    Column("held_by_pause", Boolean, nullable=False),
    Column("lease_expirations", Integer, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("executed_at", UtcDateTime, nullable=True),
    Column("version", Integer, nullable=False),
)
# Workers look only at due runnable jobs and at expired leases: keep both indexes to those rows.
Index(
    "ix_jobs_runnable",
    jobs.c.next_attempt_at,
    postgresql_where=text("status IN ('PENDING', 'RETRY')"),
)
Index(
    "ix_jobs_leases",
    jobs.c.lease_until,
    postgresql_where=text("status = 'PROCESSING'"),
)
Index("ix_jobs_org_id", jobs.c.organization_id, jobs.c.id)
Index("ix_jobs_org_status_id", jobs.c.organization_id, jobs.c.status, jobs.c.id)
Index("ix_jobs_provider_message_id", jobs.c.provider_message_id)
Index("ix_jobs_client_message_id", jobs.c.client_message_id)
Index(
    "ix_jobs_held",
    jobs.c.organization_id,
    postgresql_where=text("held_by_pause"),
)

# The kill-switch projection, as the Gate keeps it too.
controls = execution_controls_table(metadata)
