"""outbox parking: publish attempts, last error, parked_at (ADR 0031)

Revision ID: 5f0c1a2b3d4e
Revises: 24ed836e00ec
Create Date: 2026-12-01 15:10:00
"""
from libs.messaging.migration_ops import add_outbox_parking, drop_outbox_parking


revision = '5f0c1a2b3d4e'
down_revision = '24ed836e00ec'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_parking()


def downgrade() -> None:
    drop_outbox_parking()
