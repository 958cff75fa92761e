"""instance projection (registry profile, provider facts, probe lease) and the attempt's claim time

Revision ID: 8e2f4a6b1c3d
Revises: 6a1d2b3c4e5f
Create Date: 2026-12-01 18:00:00
"""
from alembic import op
import sqlalchemy as sa
import libs.db.types


revision = '8e2f4a6b1c3d'
down_revision = '6a1d2b3c4e5f'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('execution_jobs', sa.Column('claimed_at', libs.db.types.UtcDateTime(timezone=True), nullable=True))
    op.create_table('instances',
    sa.Column('instance_id', sa.String(length=64), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('provider_instance_ref', sa.String(length=200), nullable=False),
    sa.Column('provider_version', sa.String(length=32), nullable=False),
    sa.Column('provider_engine', sa.String(length=20), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('connection_state', sa.String(length=20), nullable=True),
    sa.Column('connection_reason', sa.String(length=200), nullable=False),
    sa.Column('connection_at', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('timelocked', sa.Boolean(), nullable=False),
    sa.Column('timelock_until', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('timelock_at', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('capping', sa.String(length=20), nullable=True),
    sa.Column('quota_used', sa.Integer(), nullable=True),
    sa.Column('quota_total', sa.Integer(), nullable=True),
    sa.Column('capping_at', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('next_probe_at', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('instance_id')
    )
    op.create_index('ix_instances_ref', 'instances', ['provider', 'provider_instance_ref'])
    op.create_index(
        'ix_instances_restricted',
        'instances',
        ['instance_id'],
        postgresql_where=sa.text("timelocked OR connection_state IN ('LOGGED_OUT', 'BANNED')"),
    )


def downgrade() -> None:
    op.drop_table('instances')  # its indexes go with it
    op.drop_column('execution_jobs', 'claimed_at')
