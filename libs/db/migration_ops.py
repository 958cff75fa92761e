"""Alembic operations for tables every service that needs them declares alike, called from their revisions.

Frozen like any migration: a later change to one of these tables gets new functions here and a new revision
in every service that has it, never an edit of these.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from libs.db.types import UtcDateTime


def create_execution_controls() -> None:
    """The kill-switch projection (`libs.db.controls.execution_controls_table`)."""
    op.create_table(
        "execution_controls",
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("scope_id", sa.String(length=64), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("paused_until", UtcDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("projected_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "scope", "scope_id"),
    )
    op.create_index(
        "ix_execution_controls_paused",
        "execution_controls",
        ["organization_id"],
        postgresql_where=sa.text("paused"),
    )
    op.create_index("ix_execution_controls_projected_at", "execution_controls", ["projected_at"])


def drop_execution_controls() -> None:
    op.drop_table("execution_controls")  # its indexes go with it
