"""The reputation database: its tables, plus the outbox and inbox every publishing service has."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, UniqueConstraint, text

from libs.db.types import UtcDateTime
from libs.messaging.tables import messaging_tables

metadata = MetaData()
messaging = messaging_tables(metadata)

instances = Table(
    "instances",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("organization_id", String(64), nullable=False),
    Column("display_name", String(100), nullable=False),
    Column("provider", String(20), nullable=False),
    Column("provider_instance_ref", String(200), nullable=False),
    Column("phone", String(15), nullable=False),
    Column("purposes", String(100), nullable=False),  # comma-separated, sorted: portable and greppable
    Column("connection_state", String(20), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    # Defaults for the rows registered before the registry kept them: unknown, the most cautious.
    Column("provider_version", String(32), nullable=False, server_default=text("''")),
    Column("provider_engine", String(20), nullable=False, server_default=text("'UNSPECIFIED'")),
    UniqueConstraint(
        "organization_id", "provider", "provider_instance_ref", name="uq_instances_provider_ref"
    ),
)
Index("ix_instances_org_id", instances.c.organization_id, instances.c.id)
