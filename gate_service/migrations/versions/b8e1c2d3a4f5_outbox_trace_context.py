"""outbox trace context: the span that wrote each row, continued by the relay (ADR 0050)

Revision ID: b8e1c2d3a4f5
Revises: 7a3e9c1d2b40
Create Date: 2026-12-02 02:10:00
"""
from libs.messaging.migration_ops import add_outbox_trace_context, drop_outbox_trace_context


revision = 'b8e1c2d3a4f5'
down_revision = '7a3e9c1d2b40'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_trace_context()


def downgrade() -> None:
    drop_outbox_trace_context()
