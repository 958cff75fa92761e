"""Alembic operations creating and dropping the outbox and inbox, called from each service's first revision.

Frozen like any migration: a later change to these tables gets new functions here and a new revision in
every service, never an edit of these two.
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
