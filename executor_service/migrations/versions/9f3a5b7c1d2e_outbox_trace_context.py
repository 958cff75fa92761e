"""outbox trace context: the span that wrote each row, continued by the relay (ADR 0050)

Revision ID: 9f3a5b7c1d2e
Revises: 8e2f4a6b1c3d
Create Date: 2026-12-02 02:10:00
"""
from libs.messaging.migration_ops import add_outbox_trace_context, drop_outbox_trace_context


revision = '9f3a5b7c1d2e'
down_revision = '8e2f4a6b1c3d'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_trace_context()


def downgrade() -> None:
    drop_outbox_trace_context()
