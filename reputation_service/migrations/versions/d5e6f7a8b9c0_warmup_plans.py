"""warm-up planner: organizations' settings, daily plans and their messages (issue 12)

Revision ID: d5e6f7a8b9c0
Revises: a3d5e7f90b12
Create Date: 2026-12-01 18:10:00
"""
from alembic import op
import sqlalchemy as sa

from libs.db.types import UtcDateTime


revision = 'd5e6f7a8b9c0'
down_revision = 'a3d5e7f90b12'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'warmup_settings',
        sa.Column('organization_id', sa.String(length=64), nullable=False),
        sa.Column('start_minute', sa.Integer(), nullable=False),
        sa.Column('end_minute', sa.Integer(), nullable=False),
        sa.Column('time_zone', sa.String(length=64), nullable=False),
        sa.Column('friendly_numbers', sa.String(length=1000), nullable=False),
        sa.Column('updated_at', UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('organization_id'),
    )
    op.create_table(
        'warmup_plans',
        sa.Column('instance_id', sa.String(length=36), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('organization_id', sa.String(length=64), nullable=False),
        sa.Column('day_number', sa.Integer(), nullable=False),
        sa.Column('phase', sa.String(length=20), nullable=False),
        sa.Column('window_start', UtcDateTime(timezone=True), nullable=False),
        sa.Column('window_end', UtcDateTime(timezone=True), nullable=False),
        sa.Column('time_zone', sa.String(length=64), nullable=False),
        sa.Column('note', sa.String(length=200), nullable=False),
        sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('instance_id', 'day'),
    )
    op.create_table(
        'warmup_messages',
        sa.Column('idempotency_key', sa.String(length=128), nullable=False),
        sa.Column('organization_id', sa.String(length=64), nullable=False),
        sa.Column('instance_id', sa.String(length=36), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('conversation', sa.Integer(), nullable=False),
        sa.Column('role', sa.String(length=10), nullable=False),
        sa.Column('due_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('sender_instance_id', sa.String(length=36), nullable=False),
        sa.Column('partner_instance_id', sa.String(length=36), nullable=False),
        sa.Column('partner_phone', sa.String(length=15), nullable=False),
        sa.Column('target_phone', sa.String(length=15), nullable=False),
        sa.Column('text', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('lease_until', UtcDateTime(timezone=True), nullable=True),
        sa.Column('intent_id', sa.String(length=36), nullable=False),
        sa.Column('gate_instance_id', sa.String(length=36), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.Column('submitted_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('updated_at', UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('idempotency_key'),
    )
    op.create_index('ix_warmup_messages_plan', 'warmup_messages', ['instance_id', 'day'])
    op.create_index('ix_warmup_messages_status_due', 'warmup_messages', ['status', 'due_at'])
    op.create_index('ix_warmup_messages_status_updated', 'warmup_messages', ['status', 'updated_at'])


def downgrade() -> None:
    op.drop_index('ix_warmup_messages_status_updated', table_name='warmup_messages')
    op.drop_index('ix_warmup_messages_status_due', table_name='warmup_messages')
    op.drop_index('ix_warmup_messages_plan', table_name='warmup_messages')
    op.drop_table('warmup_messages')
    op.drop_table('warmup_plans')
    op.drop_table('warmup_settings')
