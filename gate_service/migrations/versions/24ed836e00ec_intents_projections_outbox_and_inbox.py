"""intents, projections, outbox and inbox (PostgreSQL)

Revision ID: 24ed836e00ec
Revises: 
Create Date: 2026-11-22 05:54:41.953637
"""
from alembic import op
import sqlalchemy as sa
import libs.db.types
from libs.db.migration_ops import create_execution_controls, drop_execution_controls
from libs.messaging.migration_ops import create_outbox_and_inbox, drop_outbox_and_inbox


revision = '24ed836e00ec'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_and_inbox()
    op.create_table('intents',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('target_kind', sa.String(length=10), nullable=False),
    sa.Column('target_value', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=10), nullable=False),
    sa.Column('purpose', sa.String(length=10), nullable=False),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('request_hash', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('decided_by_instance_id', sa.String(length=36), nullable=True),
    sa.Column('status_reason', sa.String(length=40), nullable=True),
    sa.Column('queued_until', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('not_before', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('created_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('decided_at', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('decision', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organization_id', 'idempotency_key', name='uq_intents_idempotency_key')
    )
    op.create_index('ix_intents_org_campaign', 'intents', ['organization_id', 'campaign_id', 'id'], unique=False)
    op.create_index('ix_intents_org_id', 'intents', ['organization_id', 'id'], unique=False)
    op.create_index('ix_intents_org_instance', 'intents', ['organization_id', 'decided_by_instance_id', 'id'], unique=False)
    op.create_index('ix_intents_org_status', 'intents', ['organization_id', 'status', 'id'], unique=False)
    op.create_index('ix_intents_org_target', 'intents', ['organization_id', 'target_value', 'id'], unique=False)
    op.create_index('ix_intents_queued_due', 'intents', ['queued_until'], unique=False, postgresql_where=sa.text("status = 'QUEUED'"))

    create_execution_controls()

    op.create_table('projected_instances',
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('provider_instance_ref', sa.String(length=200), nullable=False),
    sa.Column('purposes', sa.String(length=100), nullable=False),
    sa.Column('connection_state', sa.String(length=20), nullable=False),
    sa.Column('instance_version', sa.BigInteger(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('health', sa.String(length=10), nullable=True),
    sa.Column('phase', sa.String(length=12), nullable=True),
    sa.Column('cooldown_until', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('reputation_version', sa.BigInteger(), nullable=False),
    sa.Column('changed_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('instance_id')
    )
    op.create_index('ix_projected_instances_changed', 'projected_instances', ['changed_at'], unique=False)

    op.create_table('projected_plans',
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('daily_cap', sa.BigInteger(), nullable=False),
    sa.Column('monthly_cap', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('changed_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('organization_id')
    )
    op.create_index('ix_projected_plans_changed', 'projected_plans', ['changed_at'], unique=False)


def downgrade() -> None:
    drop_outbox_and_inbox()
    # Dropping a table drops its indexes.
    op.drop_table('projected_plans')
    op.drop_table('projected_instances')
    drop_execution_controls()
    op.drop_table('intents')
