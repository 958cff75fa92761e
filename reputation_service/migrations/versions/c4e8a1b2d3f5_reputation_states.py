"""reputation_states: score, health, phase, cooldowns and the last explanation per instance (issue 12)

Revision ID: c4e8a1b2d3f5
Revises: d5e6f7a8b9c0
Create Date: 2026-12-01 18:20:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
import libs.db.types


revision = 'c4e8a1b2d3f5'
down_revision = 'd5e6f7a8b9c0'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reputation_states',
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('score', sa.SmallInteger(), nullable=False),
    sa.Column('health', sa.String(length=16), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('phase_since', libs.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('regressed_at', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('cooldown_until', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('cooldown_reason', sa.String(length=32), nullable=True),
    sa.Column('cooldown_history', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('alerts', sa.String(length=200), nullable=False),
    sa.Column('banned_at', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('evaluated_at', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('evaluation_version', sa.Integer(), nullable=False),
    sa.Column('explanation', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('dirty_since', libs.db.types.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('instance_id')
    )
    op.create_index(
        'ix_reputation_states_org_id', 'reputation_states', ['organization_id', 'instance_id'], unique=False
    )
    op.create_index(
        'ix_reputation_states_dirty', 'reputation_states', ['evaluated_at'], unique=False,
        postgresql_where=sa.text('dirty_since IS NOT NULL'),
    )
    op.create_index(
        'ix_reputation_states_cooldown', 'reputation_states', ['cooldown_until'], unique=False,
        postgresql_where=sa.text('cooldown_until IS NOT NULL'),
    )
    op.create_index('ix_reputation_states_evaluated_at', 'reputation_states', ['evaluated_at'], unique=False)
    # Numbers registered before reputation kept states: where the Gate already assumed they were
    # (INTERACTING, score 70, HEALTHY), unevaluated (version 0, no event), due for a first evaluation.
    op.execute(
        "INSERT INTO reputation_states (instance_id, organization_id, score, health, phase, phase_since, "
        "cooldown_history, alerts, version, evaluation_version, dirty_since) "
        "SELECT id, organization_id, 70, 'HEALTHY', 'INTERACTING', created_at, '[]'::jsonb, '', 0, 1, now() "
        "FROM instances"
    )


def downgrade() -> None:
    op.drop_index('ix_reputation_states_evaluated_at', table_name='reputation_states')
    op.drop_index('ix_reputation_states_cooldown', table_name='reputation_states')
    op.drop_index('ix_reputation_states_dirty', table_name='reputation_states')
    op.drop_index('ix_reputation_states_org_id', table_name='reputation_states')
    op.drop_table('reputation_states')
