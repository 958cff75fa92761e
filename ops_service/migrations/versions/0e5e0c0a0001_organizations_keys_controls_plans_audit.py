"""organizations, members, api keys, controls, plans, audit log, outbox and inbox

Revision ID: 0e5e0c0a0001
Revises: 
Create Date: 2026-12-01 20:40:00.000000
"""
from alembic import op
import sqlalchemy as sa
import libs.db.types
from libs.messaging.migration_ops import (
    add_outbox_parking,
    create_outbox_and_inbox,
    drop_outbox_and_inbox,
    drop_outbox_parking,
)


revision = '0e5e0c0a0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_and_inbox()
    add_outbox_parking()
    op.create_table('organizations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('members',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('created_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organization_id', 'user_id', name='uq_members_user')
    )
    op.create_index('ix_members_org_id', 'members', ['organization_id', 'id'], unique=False)
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('secret_sha256', sa.LargeBinary(length=32), nullable=False),
    sa.Column('created_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=300), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('prefix')
    )
    op.create_index('ix_api_keys_org_id', 'api_keys', ['organization_id', 'id'], unique=False)
    op.create_table('controls',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('scope_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=300), nullable=False),
    sa.Column('paused_until', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organization_id', 'scope', 'scope_id', name='uq_controls_scope')
    )
    op.create_index('ix_controls_org_id', 'controls', ['organization_id', 'id'], unique=False)
    op.create_index('ix_controls_paused', 'controls', ['id'], unique=False,
                    postgresql_where=sa.text("status = 'PAUSED'"))
    op.create_index('ix_controls_paused_until', 'controls', ['paused_until'], unique=False,
                    postgresql_where=sa.text("status = 'PAUSED' AND paused_until IS NOT NULL"))
    op.create_table('plans',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('daily_message_cap', sa.BigInteger(), nullable=False),
    sa.Column('monthly_message_cap', sa.BigInteger(), nullable=False),
    sa.Column('max_instances', sa.Integer(), nullable=False),
    sa.Column('updated_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organization_id')
    )
    op.create_table('audit_entries',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=300), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('occurred_at', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_audit_entries_org_id', 'audit_entries', ['organization_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_audit_entries_org_id', table_name='audit_entries')
    op.drop_table('audit_entries')
    op.drop_table('plans')
    op.drop_index('ix_controls_paused_until', table_name='controls')
    op.drop_index('ix_controls_paused', table_name='controls')
    op.drop_index('ix_controls_org_id', table_name='controls')
    op.drop_table('controls')
    op.drop_index('ix_api_keys_org_id', table_name='api_keys')
    op.drop_table('api_keys')
    op.drop_index('ix_members_org_id', table_name='members')
    op.drop_table('members')
    op.drop_table('organizations')
    drop_outbox_parking()
    drop_outbox_and_inbox()
