"""Prometheus series of ops' timeline consumers: the execution numbers of every organization together
(labels never carry an organization or instance id: bounded cardinality; per-organization and per-instance
numbers are GetExecutionMetrics and GetInstanceMetrics)."""

from prometheus_client import Counter, Histogram

from ops_service.domain.execution_counts import TIME_TO_SEND_BOUNDS_MS

TIMELINE_FACTS = Counter(
    "whatlead_ops_timeline_facts_total",
    "Events recorded in the timeline (each once: a redelivery is not counted), by the context publishing",
    ["context"],
)
FUNNEL = Counter(
    "whatlead_funnel_total",
    "Intents reaching each stage of the sending funnel (submitted, approved, sent, delivered, read, replied, "
    "failed), each fact once",
    ["stage"],
)
INTENTS = Counter(
    "whatlead_ops_intents_total",
    "Intents submitted (outcome submitted) and the Gate's decisions on them: approved, queued, blocked, "
    "dropped",
    ["outcome"],
)
NOT_APPROVED = Counter(
    "whatlead_ops_not_approved_total", "Decisions that did not approve an intent, by reason", ["reason"]
)
SENDS = Counter(
    "whatlead_ops_sends_total",
    "The Executor's outcomes: sent, failed (final), retries scheduled, needs review",
    ["outcome"],
)
FAILURES = Counter("whatlead_ops_failures_total", "Final send failures, by error class", ["error_class"])
DELIVERIES = Counter(
    "whatlead_ops_delivery_reports_total", "Delivered and read reports, by status", ["status"]
)
COOLDOWNS = Counter("whatlead_ops_cooldowns_started_total", "Cooldowns Reputation started")
TIME_TO_SEND = Histogram(
    "whatlead_ops_time_to_send_seconds",
    "From an intent's creation to the provider's acceptance of its message",
    buckets=[bound / 1000 for bound in TIME_TO_SEND_BOUNDS_MS],
)
RATE_PRESSURE = Histogram(
    "whatlead_ops_rate_pressure",
    "The chosen instance's rate pressure (used / cap of its tightest window) at each approval",
    buckets=[0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0],
)
TIMELINE_PRUNED = Counter(
    "whatlead_ops_timeline_rows_pruned_total",
    "Rows past their retention deleted by the periodic pruning, by table (timeline_events, "
    "execution_counters)",
    ["table"],
)
