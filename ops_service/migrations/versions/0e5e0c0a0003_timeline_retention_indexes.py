"""indexes the retention pass deletes the oldest timeline facts and counter buckets by

Revision ID: 0e5e0c0a0003
Revises: 0e5e0c0a0002
Create Date: 2026-12-01 22:00:00.000000
"""
from alembic import op


revision = '0e5e0c0a0003'
down_revision = '0e5e0c0a0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_timeline_events_occurred_at', 'timeline_events', ['occurred_at'], unique=False)
    op.create_index('ix_execution_counters_bucket', 'execution_counters', ['resolution', 'bucket_start'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_execution_counters_bucket', table_name='execution_counters')
    op.drop_index('ix_timeline_events_occurred_at', table_name='timeline_events')
