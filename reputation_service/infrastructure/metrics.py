"""Prometheus series of the reputation context (labels never carry ids: bounded cardinality)."""

from prometheus_client import Counter, Gauge

SIGNALS = Counter("whatlead_reputation_signals_total", "Signals recorded (each fact once), by kind", ["kind"])
SIGNAL_DUPLICATES = Counter(
    "whatlead_reputation_signal_duplicates_total",
    "Reports of a fact already recorded (a webhook and a probe of the same change, a repeated ack), by kind",
    ["kind"],
)
UNKNOWN_INSTANCE = Counter(
    "whatlead_reputation_unknown_instance_facts_total",
    "Facts reported about an instance the registry does not know (or not of the organization the report "
    "names), dropped; by who reported them",
    ["source"],
)
SIGNALS_PRUNED = Counter(
    "whatlead_reputation_signals_pruned_total",
    "Rows of the raw signal log, its tracked messages and expired buckets deleted by the periodic pruning",
)
EVALUATIONS = Counter(
    "whatlead_reputation_evaluations_total",
    "Evaluations of an instance's reputation, by trigger (windows: the debounced or periodic pass; "
    "restriction: a 463 or a ban applied at once; registered: a new number's first state) and whether "
    "anything another context sees changed (announced with ReputationEvaluated)",
    ["trigger", "changed"],
)
COOLDOWNS_STARTED = Counter(
    "whatlead_reputation_cooldowns_started_total",
    "Cooldowns started (or extended to the provider's later end), by reason",
    ["reason"],
)
INSTANCES_BY_HEALTH = Gauge(
    "whatlead_reputation_instances_by_health",
    "Instances per health, as of the last periodic pass",
    ["health"],
    multiprocess_mode="mostrecent",
)
INSTANCES_BY_PHASE = Gauge(
    "whatlead_reputation_instances_by_phase",
    "Instances per warm-up phase, as of the last periodic pass",
    ["phase"],
    multiprocess_mode="mostrecent",
)

# Onboarding (ADR 0049).
CONNECTION_REPORTS = Counter(
    "whatlead_reputation_connection_reports_total",
    "Connection reports (webhooks, probes, status checks), by outcome: applied, stale (not newer than the "
    "last applied), unknown_instance",
    ["outcome"],
)
CONNECTS = Counter(
    "whatlead_reputation_connects_total",
    "ConnectInstance calls that reached a provider, by provider and outcome (ok, or the gRPC status name)",
    ["provider", "outcome"],
)
WATCHERS = Gauge(
    "whatlead_reputation_instance_watchers",
    "WatchInstance streams open in this process",
    multiprocess_mode="livesum",
)
STATUS_CHECKS = Counter(
    "whatlead_reputation_status_checks_total",
    "Session status checks at the provider, by outcome (ok, unavailable, not_configured)",
    ["outcome"],
)
