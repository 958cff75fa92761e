"""note edited_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 13:00:01
"""

import sqlalchemy as sa
from alembic import op

import libs.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notes", sa.Column("edited_at", libs.db.types.UtcDateTime(timezone=True), nullable=True))
    op.execute(sa.text("INSERT INTO revisions_applied (revision) VALUES (:revision)").bindparams(revision=revision))


def downgrade() -> None:
    op.drop_column("notes", "edited_at")
