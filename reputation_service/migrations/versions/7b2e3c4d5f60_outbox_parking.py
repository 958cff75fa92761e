"""outbox parking: publish attempts, last error, parked_at (ADR 0031)

Revision ID: 7b2e3c4d5f60
Revises: 33a39e1f417a
Create Date: 2026-12-01 15:10:00
"""
from libs.messaging.migration_ops import add_outbox_parking, drop_outbox_parking


revision = '7b2e3c4d5f60'
down_revision = '33a39e1f417a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_parking()


def downgrade() -> None:
    drop_outbox_parking()
