"""execution jobs, controls, outbox and inbox

Revision ID: 7c374874c6c6
Revises: 
Create Date: 2026-11-22 05:50:47.669829
"""
from alembic import op
import sqlalchemy as sa
import libs.db.types
from libs.db.migration_ops import create_execution_controls, drop_execution_controls
from libs.messaging.migration_ops import create_outbox_and_inbox, drop_outbox_and_inbox


revision = '7c374874c6c6'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_and_inbox()
    create_execution_controls()

    op.create_table('execution_jobs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('intent_id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('provider_instance_ref', sa.String(length=200), nullable=False),
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('attempts_base', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('lease_until', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('lease_token', sa.String(length=36), nullable=True),
    sa.Column('client_message_id', sa.String(length=64), nullable=True),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('delivery_status', sa.String(length=20), nullable=False),
    sa.Column('held_by_pause', sa.Boolean(), nullable=False),
    sa.Column('lease_expirations', sa.Integer(), nullable=False),
    sa.Column('expires_at', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('executed_at', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('intent_id')
    )
    op.create_index('ix_jobs_client_message_id', 'execution_jobs', ['client_message_id'])
    op.create_index('ix_jobs_held', 'execution_jobs', ['organization_id'], postgresql_where=sa.text('held_by_pause'))
    op.create_index('ix_jobs_leases', 'execution_jobs', ['lease_until'], postgresql_where=sa.text("status = 'PROCESSING'"))
    op.create_index('ix_jobs_org_id', 'execution_jobs', ['organization_id', 'id'])
    op.create_index('ix_jobs_org_status_id', 'execution_jobs', ['organization_id', 'status', 'id'])
    op.create_index('ix_jobs_provider_message_id', 'execution_jobs', ['provider_message_id'])
    op.create_index('ix_jobs_runnable', 'execution_jobs', ['next_attempt_at'], postgresql_where=sa.text("status IN ('PENDING', 'RETRY')"))


def downgrade() -> None:
    op.drop_table('execution_jobs')  # its indexes go with it
    drop_execution_controls()
    drop_outbox_and_inbox()
