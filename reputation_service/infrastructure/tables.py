"""The reputation database: its tables, plus the outbox and inbox every publishing service has."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from libs.db.types import UtcDateTime
from libs.messaging.tables import messaging_tables
from reputation_service.domain.signals import COUNTER_NAMES, LATENCY_BINS

metadata = MetaData()
messaging = messaging_tables(metadata)

instances = Table(
    "instances",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("organization_id", String(64), nullable=False),
    Column("display_name", String(100), nullable=False),
    Column("provider", String(20), nullable=False),
    Column("provider_instance_ref", String(200), nullable=False),
    Column("phone", String(15), nullable=False),
    Column("purposes", String(100), nullable=False),  # comma-separated, sorted: portable and greppable
    Column("connection_state", String(20), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    # Defaults for the rows registered before the registry kept them: unknown, the most cautious.
    Column("provider_version", String(32), nullable=False, server_default=text("''")),
    Column("provider_engine", String(20), nullable=False, server_default=text("'UNSPECIFIED'")),
    # What the provider last said about the connection, and when that report was observed (reports older
    # than it are ignored: domain/instance.py).
    Column("connection_reason", String(200), nullable=False, server_default=text("''")),
    Column("connection_observed_at", UtcDateTime, nullable=True),
    # When the status check last asked the provider (its bookkeeping, not the aggregate's).
    Column("connection_checked_at", UtcDateTime, nullable=True),
    UniqueConstraint(
        "organization_id", "provider", "provider_instance_ref", name="uq_instances_provider_ref"
    ),
)
Index("ix_instances_org_id", instances.c.organization_id, instances.c.id)
# The status check's scan: instances of a state, the longest unasked first.
Index("ix_instances_connection_check", instances.c.connection_state, instances.c.connection_checked_at)

# The raw log: one row per fact (its fact key), pruned by `recorded_at` after the retention period.
signals = Table(
    "signals",
    metadata,
    Column("fact_key", Text, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("instance_id", String(36), nullable=False),
    Column("organization_id", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("source", String(10), nullable=False),
    Column("provider_message_id", Text, nullable=False),
    Column("message_key", String(200), nullable=False),
    Column("is_group", Boolean, nullable=True),
    Column("ack_latency_ms", BigInteger, nullable=True),
)
Index("ix_signals_recorded_at", signals.c.recorded_at)

# The instance's own messages as the facts about them arrived: what latency and soft failures need.
signal_messages = Table(
    "signal_messages",
    metadata,
    Column("instance_id", String(36), primary_key=True),
    Column("message_key", String(200), primary_key=True),
    Column("job_id", String(36), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("delivered_at", UtcDateTime, nullable=True),
    Column("answered", Boolean, nullable=False),
    Column("latency_ms", BigInteger, nullable=True),
)
Index(
    "ix_signal_messages_job",
    signal_messages.c.instance_id,
    signal_messages.c.job_id,
    postgresql_where=text("job_id <> ''"),
)
Index("ix_signal_messages_first_seen_at", signal_messages.c.first_seen_at)

# Counters per instance and bucket (60 s or 3600 s), and the ack latency histogram as one column per bin.
ACK_BIN_COLUMNS = tuple(f"ack_bin_{index:02d}" for index in range(LATENCY_BINS))
signal_buckets = Table(
    "signal_buckets",
    metadata,
    Column("instance_id", String(36), primary_key=True),
    Column("granularity", SmallInteger, primary_key=True),
    Column("bucket_start", UtcDateTime, primary_key=True),
    *(
        Column(name, BigInteger, nullable=False, server_default=text("0"))
        for name in (*COUNTER_NAMES, *ACK_BIN_COLUMNS)
    ),
)
Index("ix_signal_buckets_age", signal_buckets.c.granularity, signal_buckets.c.bucket_start)

# Reputation per instance (ReputationState), with the explanation of the last evaluation that changed
# something, and `dirty_since`: signals arrived since the last evaluation (the debounced evaluator's queue).
reputation_states = Table(
    "reputation_states",
    metadata,
    Column("instance_id", String(36), primary_key=True),
    Column("organization_id", String(64), nullable=False),
    Column("score", SmallInteger, nullable=False),
    Column("health", String(16), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("phase_since", UtcDateTime, nullable=False),
    Column("regressed_at", UtcDateTime, nullable=True),
    Column("cooldown_until", UtcDateTime, nullable=True),
    Column("cooldown_reason", String(32), nullable=True),
    Column("cooldown_history", JSONB, nullable=False),
    Column("alerts", String(200), nullable=False),  # comma-separated, in the contract's order
    Column("banned_at", UtcDateTime, nullable=True),
    Column("evaluated_at", UtcDateTime, nullable=True),
    Column("version", BigInteger, nullable=False),
    Column("evaluation_version", Integer, nullable=False),
    Column("explanation", JSONB, nullable=True),
    Column("dirty_since", UtcDateTime, nullable=True),
)
Index("ix_reputation_states_org_id", reputation_states.c.organization_id, reputation_states.c.instance_id)
# The evaluator's queues: partial indexes stay as small as what is waiting.
Index(
    "ix_reputation_states_dirty",
    reputation_states.c.evaluated_at,
    postgresql_where=text("dirty_since IS NOT NULL"),
)
Index(
    "ix_reputation_states_cooldown",
    reputation_states.c.cooldown_until,
    postgresql_where=text("cooldown_until IS NOT NULL"),
)
Index("ix_reputation_states_evaluated_at", reputation_states.c.evaluated_at)
# --- Warm-up planner (reputation_service/domain/warmup_plan.py) -------------------------------------------

warmup_settings = Table(
    "warmup_settings",
    metadata,
    Column("organization_id", String(64), primary_key=True),
    Column("start_minute", Integer, nullable=False),  # minutes after local midnight
    Column("end_minute", Integer, nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("friendly_numbers", String(1000), nullable=False),  # comma-separated E.164 digits, in order
    Column("updated_at", UtcDateTime, nullable=False),
)

warmup_plans = Table(
    "warmup_plans",
    metadata,
    Column("instance_id", String(36), primary_key=True),
    Column("day", Date, primary_key=True),  # the organization's local date
    Column("organization_id", String(64), nullable=False),
    Column("day_number", Integer, nullable=False),
    Column("phase", String(20), nullable=False),
    Column("window_start", UtcDateTime, nullable=False),
    Column("window_end", UtcDateTime, nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("note", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

warmup_messages = Table(
    "warmup_messages",
    metadata,
    Column("idempotency_key", String(128), primary_key=True),
    Column("organization_id", String(64), nullable=False),
    Column("instance_id", String(36), nullable=False),
    Column("day", Date, nullable=False),
    Column("conversation", Integer, nullable=False),
    Column("role", String(10), nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("sender_instance_id", String(36), nullable=False),
    Column("partner_instance_id", String(36), nullable=False),  # "" for a friendly number
    Column("partner_phone", String(15), nullable=False),
    Column("target_phone", String(15), nullable=False),
    Column("text", String(200), nullable=False),
    Column("status", String(10), nullable=False),
    Column("lease_until", UtcDateTime, nullable=True),  # PLANNED: not before (claimed, or retry later)
    Column("intent_id", String(36), nullable=False),
    Column("gate_instance_id", String(36), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("submitted_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_warmup_messages_plan", warmup_messages.c.instance_id, warmup_messages.c.day)
# The passes' scans: due PLANNED messages, SUBMITTED ones waiting for their outcome.
Index("ix_warmup_messages_status_due", warmup_messages.c.status, warmup_messages.c.due_at)
Index("ix_warmup_messages_status_updated", warmup_messages.c.status, warmup_messages.c.updated_at)

# Each organization's instance cap, from ops' PlanChanged (its version: older plans are dropped). A
# registration locks its organization's row, so counting and inserting under a cap take turns.
instance_allowances = Table(
    "instance_allowances",
    metadata,
    Column("organization_id", String(64), primary_key=True),
    Column("max_instances", Integer, nullable=False),  # 0: unlimited
    Column("version", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
