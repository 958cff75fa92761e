"""signals: the raw log, the messages it correlates and the per-instance window buckets (issue 12)

Revision ID: a3d5e7f90b12
Revises: 9c4d1e2f3a70
Create Date: 2026-12-01 18:00:00
"""
from alembic import op
import sqlalchemy as sa
import libs.db.types


revision = 'a3d5e7f90b12'
down_revision = '9c4d1e2f3a70'
branch_labels = None
depends_on = None

# The same names as the code declares (reputation_service/infrastructure/tables.py), fixed here so that a
# later change there needs a revision of its own.
COUNTERS = (
    'sent', 'delivered', 'read', 'replied', 'received', 'failed', 'connects', 'disconnects',
    'connection_errors', 'timelocks', 'bans', 'answered', 'latency_count', 'latency_sum_ms',
)
ACK_BINS = tuple(f'ack_bin_{index:02d}' for index in range(32))


def upgrade() -> None:
    op.create_table('signals',
    sa.Column('fact_key', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('provider_message_id', sa.Text(), nullable=False),
    sa.Column('message_key', sa.String(length=200), nullable=False),
    sa.Column('is_group', sa.Boolean(), nullable=True),
    sa.Column('ack_latency_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('fact_key')
    )
    op.create_index('ix_signals_recorded_at', 'signals', ['recorded_at'], unique=False)
    op.create_table('signal_messages',
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('message_key', sa.String(length=200), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('first_seen_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('answered', sa.Boolean(), nullable=False),
    sa.Column('latency_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('instance_id', 'message_key')
    )
    op.create_index(
        'ix_signal_messages_job', 'signal_messages', ['instance_id', 'job_id'], unique=False,
        postgresql_where=sa.text("job_id <> ''"),
    )
    op.create_index('ix_signal_messages_first_seen_at', 'signal_messages', ['first_seen_at'], unique=False)
    op.create_table('signal_buckets',
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('granularity', sa.SmallInteger(), nullable=False),
    sa.Column('bucket_start', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    *(
        sa.Column(name, sa.BigInteger(), server_default=sa.text('0'), nullable=False)
        for name in (*COUNTERS, *ACK_BINS)
    ),
    sa.PrimaryKeyConstraint('instance_id', 'granularity', 'bucket_start')
    )
    op.create_index('ix_signal_buckets_age', 'signal_buckets', ['granularity', 'bucket_start'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_signal_buckets_age', table_name='signal_buckets')
    op.drop_table('signal_buckets')
    op.drop_index('ix_signal_messages_first_seen_at', table_name='signal_messages')
    op.drop_index('ix_signal_messages_job', table_name='signal_messages', postgresql_where=sa.text("job_id <> ''"))
    op.drop_table('signal_messages')
    op.drop_index('ix_signals_recorded_at', table_name='signals')
    op.drop_table('signals')
