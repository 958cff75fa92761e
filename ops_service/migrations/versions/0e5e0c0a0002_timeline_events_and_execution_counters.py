"""timeline (every context's events) and execution counters

Revision ID: 0e5e0c0a0002
Revises: 0e5e0c0a0001
Create Date: 2026-12-01 21:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import libs.db.types


revision = '0e5e0c0a0002'
down_revision = '0e5e0c0a0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('timeline_events',
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('sequence', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('type_name', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('aggregate_id', sa.String(length=64), nullable=False),
    sa.Column('correlation_id', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('instance_id', sa.String(length=64), nullable=False),
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('remote_phone', sa.String(length=64), nullable=False),
    sa.Column('provider_message_id', sa.String(length=200), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_index('ix_timeline_events_correlation', 'timeline_events', ['correlation_id', 'occurred_at'], unique=False)
    op.create_index('ix_timeline_events_instance', 'timeline_events', ['instance_id', 'type_name', 'occurred_at'], unique=False, postgresql_where=sa.text("instance_id <> ''"))
    op.create_index('ix_timeline_events_remote_phone', 'timeline_events', ['instance_id', 'remote_phone', 'occurred_at'], unique=False, postgresql_where=sa.text("remote_phone <> '' AND instance_id <> ''"))
    op.create_index('ix_timeline_events_provider_message', 'timeline_events', ['provider_message_id'], unique=False, postgresql_where=sa.text("provider_message_id <> ''"))
    op.create_index('ix_timeline_events_controls', 'timeline_events', ['organization_id', 'occurred_at'], unique=False, postgresql_where=sa.text("scope <> ''"))
    op.create_table('execution_counters',
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('resolution', sa.SmallInteger(), nullable=False),
    sa.Column('bucket_start', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('instance_id', sa.String(length=64), nullable=False),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('peak', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('organization_id', 'resolution', 'bucket_start', 'instance_id', 'metric', 'label')
    )


def downgrade() -> None:
    op.drop_table('execution_counters')
    op.drop_index('ix_timeline_events_controls', table_name='timeline_events')
    op.drop_index('ix_timeline_events_provider_message', table_name='timeline_events')
    op.drop_index('ix_timeline_events_remote_phone', table_name='timeline_events')
    op.drop_index('ix_timeline_events_instance', table_name='timeline_events')
    op.drop_index('ix_timeline_events_correlation', table_name='timeline_events')
    op.drop_table('timeline_events')
