"""Alembic operations on the outbox and inbox, called from each service's revisions: the first creates them,
later ones change them alike in every service.

Frozen like any migration: a later change to these tables gets new functions here and a new revision in
every service, never an edit of the existing ones.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from libs.db.types import UtcDateTime

_UNPUBLISHED = "published_at IS NULL"


def create_outbox_and_inbox() -> None:
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("processed_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at"])
    op.create_table(
        "outbox",
        sa.Column("position", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("type_name", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("published_at", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("position"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    op.create_index("ix_outbox_unpublished", "outbox", ["position"], postgresql_where=sa.text(_UNPUBLISHED))


def drop_outbox_and_inbox() -> None:
    op.drop_table("outbox")  # its indexes go with it
    op.drop_table("inbox")


def add_outbox_parking() -> None:
    """Publish attempts, the last error and the parking time of rows JetStream refuses (ADR 0031)."""
    op.add_column(
        "outbox", sa.Column("publish_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("outbox", sa.Column("last_error", sa.String(length=200), nullable=True))
    op.add_column("outbox", sa.Column("parked_at", UtcDateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_outbox_parked", "outbox", ["position"], postgresql_where=sa.text("parked_at IS NOT NULL")
    )


def drop_outbox_parking() -> None:
    op.drop_index("ix_outbox_parked", table_name="outbox")
    op.drop_column("outbox", "parked_at")
    op.drop_column("outbox", "last_error")
    op.drop_column("outbox", "publish_attempts")


def add_outbox_trace_context() -> None:
    """The trace context of the span that wrote each row, as the relay continues it (ADR 0050); nullable:
    rows written with tracing off have none. Adding a nullable column without a default rewrites nothing."""
    op.add_column("outbox", sa.Column("trace_context", sa.Text(), nullable=True))


def drop_outbox_trace_context() -> None:
    op.drop_column("outbox", "trace_context")
