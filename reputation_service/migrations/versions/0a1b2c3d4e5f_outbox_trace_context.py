"""outbox trace context: the span that wrote each row, continued by the relay (ADR 0050)

Revision ID: 0a1b2c3d4e5f
Revises: f1a2b3c4d5e6
Create Date: 2026-12-02 02:10:00
"""
from libs.messaging.migration_ops import add_outbox_trace_context, drop_outbox_trace_context


revision = '0a1b2c3d4e5f'
down_revision = 'f1a2b3c4d5e6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_trace_context()


def downgrade() -> None:
    drop_outbox_trace_context()
