"""notes, outbox and inbox

Revision ID: 0001
Revises:
Create Date: 2026-12-01 13:00:00
"""

import sqlalchemy as sa
from alembic import op

from libs.messaging.migration_ops import create_outbox_and_inbox, drop_outbox_and_inbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_and_inbox()
    op.create_table(
        "notes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    revisions_applied = op.create_table(
        "revisions_applied",
        sa.Column("position", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("revision", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("position"),
    )
    op.bulk_insert(revisions_applied, [{"revision": revision}])
    # A slow revision, so that migrators started together overlap in it unless something serialises them.
    op.execute("SELECT pg_sleep(0.5)")


def downgrade() -> None:
    op.drop_table("revisions_applied")
    op.drop_table("notes")
    drop_outbox_and_inbox()
