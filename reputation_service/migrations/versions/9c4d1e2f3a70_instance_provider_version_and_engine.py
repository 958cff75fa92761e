"""instances: the provider's version and engine (issue 18)

Revision ID: 9c4d1e2f3a70
Revises: 7b2e3c4d5f60
Create Date: 2026-12-01 17:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '9c4d1e2f3a70'
down_revision = '7b2e3c4d5f60'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows registered before this revision: unknown version and engine, the provider's most cautious row.
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('provider_version', sa.String(length=32), server_default=sa.text("''"), nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                'provider_engine', sa.String(length=20), server_default=sa.text("'UNSPECIFIED'"), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('provider_engine')
        batch_op.drop_column('provider_version')
