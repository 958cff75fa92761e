"""The outbox and inbox tables, added to each service's own metadata (one database per service)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, MetaData, String, Table, Text, text

from libs.db.types import UtcDateTime


@dataclass(frozen=True)
class MessagingTables:
    outbox: Table
    inbox: Table


def messaging_tables(metadata: MetaData) -> MessagingTables:
    outbox = Table(
        "outbox",
        metadata,
        # Publication order; an identity never reused, unlike timestamps that can tie.
        Column("position", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("subject", String(200), nullable=False),  # without the root token
        Column("type_name", String(200), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("published_at", UtcDateTime, nullable=True),
        # A row JetStream refused while others went through (too large, a subject no stream takes): how
        # often, why (the error's kind, never the payload), and once that reached the relay's bound, when
        # it was parked. A parked row is left for review, not retried (ADR 0031).
        Column("publish_attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", String(200), nullable=True),
        Column("parked_at", UtcDateTime, nullable=True),
        # The W3C trace context (propagator headers as JSON) of the span that wrote the row, so the relay
        # publishes it as a continuation of that trace (libs.tracing); null when tracing is off.
        Column("trace_context", Text, nullable=True),
    )
    # The relay only ever looks for unpublished rows; keep that index tiny.
    Index("ix_outbox_unpublished", outbox.c.position, postgresql_where=text("published_at IS NULL"))
    Index("ix_outbox_published_at", outbox.c.published_at)
    Index("ix_outbox_parked", outbox.c.position, postgresql_where=text("parked_at IS NOT NULL"))
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("processed_at", UtcDateTime, nullable=False),
    )
    Index("ix_inbox_processed_at", inbox.c.processed_at)
    return MessagingTables(outbox=outbox, inbox=inbox)
