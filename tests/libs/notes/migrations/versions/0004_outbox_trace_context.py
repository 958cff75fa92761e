"""outbox trace context

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 02:10:00
"""

import sqlalchemy as sa
from alembic import op

from libs.messaging.migration_ops import add_outbox_trace_context, drop_outbox_trace_context

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_trace_context()
    op.execute(sa.text("INSERT INTO revisions_applied (revision) VALUES (:revision)").bindparams(revision=revision))


def downgrade() -> None:
    drop_outbox_trace_context()
