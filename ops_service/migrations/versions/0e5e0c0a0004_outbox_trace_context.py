"""outbox trace context: the span that wrote each row, continued by the relay (ADR 0050)

Revision ID: 0e5e0c0a0004
Revises: 0e5e0c0a0003
Create Date: 2026-12-02 02:10:00
"""
from libs.messaging.migration_ops import add_outbox_trace_context, drop_outbox_trace_context


revision = '0e5e0c0a0004'
down_revision = '0e5e0c0a0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_trace_context()


def downgrade() -> None:
    drop_outbox_trace_context()
