"""outbox parking: publish attempts, last error, parked_at (ADR 0031)

Revision ID: 6a1d2b3c4e5f
Revises: 7c374874c6c6
Create Date: 2026-12-01 15:10:00
"""
from libs.messaging.migration_ops import add_outbox_parking, drop_outbox_parking


revision = '6a1d2b3c4e5f'
down_revision = '7c374874c6c6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_parking()


def downgrade() -> None:
    drop_outbox_parking()
