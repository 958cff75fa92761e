"""intent pin and instance phone: intents.pinned_instance_id, projected_instances.phone

Revision ID: 7a3e9c1d2b40
Revises: 5f0c1a2b3d4e
Create Date: 2026-12-01 18:50:00
"""
import sqlalchemy as sa
from alembic import op


revision = '7a3e9c1d2b40'
down_revision = '5f0c1a2b3d4e'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and empty by default: adding them rewrites no row.
    op.add_column('intents', sa.Column('pinned_instance_id', sa.String(36), nullable=True))
    op.add_column(
        'projected_instances', sa.Column('phone', sa.String(32), nullable=False, server_default='')
    )


def downgrade() -> None:
    op.drop_column('projected_instances', 'phone')
    op.drop_column('intents', 'pinned_instance_id')
