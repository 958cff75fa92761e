"""instance_allowances: each organization's instance cap from ops' plans (issue 13)

Revision ID: e7f8a9b0c1d2
Revises: c4e8a1b2d3f5
Create Date: 2026-12-01 20:40:00
"""
from alembic import op
import sqlalchemy as sa

from libs.db.types import UtcDateTime


revision = 'e7f8a9b0c1d2'
down_revision = 'c4e8a1b2d3f5'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'instance_allowances',
        sa.Column('organization_id', sa.String(length=64), nullable=False),
        sa.Column('max_instances', sa.Integer(), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('organization_id'),
    )


def downgrade() -> None:
    op.drop_table('instance_allowances')
