"""outbox parking

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 15:10:00
"""

import sqlalchemy as sa
from alembic import op

from libs.messaging.migration_ops import add_outbox_parking, drop_outbox_parking

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_parking()
    op.execute(sa.text("INSERT INTO revisions_applied (revision) VALUES (:revision)").bindparams(revision=revision))


def downgrade() -> None:
    drop_outbox_parking()
