"""The notes database: one table of notes, the outbox and inbox, and a log of applied revisions."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table

from libs.db.types import UtcDateTime
from libs.messaging.tables import messaging_tables

metadata = MetaData()
messaging = messaging_tables(metadata)

notes = Table(
    "notes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("organization_id", String(64), nullable=False),
    Column("text", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("edited_at", UtcDateTime, nullable=True),  # added by the second revision
)

# One row per revision each time its upgrade runs: how the tests see that a revision ran exactly once.
revisions_applied = Table(
    "revisions_applied",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("revision", String(32), nullable=False),
)
