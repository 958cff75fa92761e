"""instances: the provider's reason for the last connection change, when it was observed, and when the
status check last asked (issue 16)

Revision ID: f1a2b3c4d5e6
Revises: e7f8a9b0c1d2
Create Date: 2026-12-01 23:20:00
"""
from alembic import op
import sqlalchemy as sa

from libs.db.types import UtcDateTime


revision = 'f1a2b3c4d5e6'
down_revision = 'e7f8a9b0c1d2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows from before: no reason, never observed (the next report applies, whatever its time).
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('connection_reason', sa.String(length=200), server_default=sa.text("''"), nullable=False)
        )
        batch_op.add_column(sa.Column('connection_observed_at', UtcDateTime(), nullable=True))
        # When the status check last asked the provider.
        batch_op.add_column(sa.Column('connection_checked_at', UtcDateTime(), nullable=True))
        batch_op.create_index(
            'ix_instances_connection_check', ['connection_state', 'connection_checked_at'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_index('ix_instances_connection_check')
        batch_op.drop_column('connection_checked_at')
        batch_op.drop_column('connection_observed_at')
        batch_op.drop_column('connection_reason')
