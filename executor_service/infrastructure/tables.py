"""The executor database: jobs, the kill-switch and instance projections, plus the outbox and inbox."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text, text

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
    Column("claimed_at", UtcDateTime, nullable=True),  # the latest attempt's claim: lookups search from it
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

# The instances: the registry's profile (Reputation's events, versioned) and the provider's facts about
# each (webhooks, probes, send errors), which hold their jobs while they restrict the instance.
instances = Table(
    "instances",
    metadata,
    Column("instance_id", String(64), primary_key=True),
    Column("organization_id", String(64), nullable=False),
    Column("provider", String(20), nullable=False),
    Column("provider_instance_ref", String(200), nullable=False),
    Column("provider_version", String(32), nullable=False),
    Column("provider_engine", String(20), nullable=False),
    Column("version", BigInteger, nullable=False),  # the registry's; 0 = known only from facts so far
    Column("connection_state", String(20), nullable=True),
    Column("connection_reason", String(200), nullable=False),
    Column("connection_at", UtcDateTime, nullable=True),
    Column("timelocked", Boolean, nullable=False),
    Column("timelock_until", UtcDateTime, nullable=True),
    Column("timelock_at", UtcDateTime, nullable=True),
    Column("capping", String(20), nullable=True),
    Column("quota_used", Integer, nullable=True),
    Column("quota_total", Integer, nullable=True),
    Column("capping_at", UtcDateTime, nullable=True),
    # The probe lease: a replica moves it one interval ahead when it takes the instance (NULL: due now).
    Column("next_probe_at", UtcDateTime, nullable=True),
)
Index("ix_instances_ref", instances.c.provider, instances.c.provider_instance_ref)
# Workers keep the restricted ones in memory: a handful of rows.
Index(
    "ix_instances_restricted",
    instances.c.instance_id,
    postgresql_where=text("timelocked OR connection_state IN ('LOGGED_OUT', 'BANNED')"),
)
