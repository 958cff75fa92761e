"""Prometheus series of the reputation context (labels never carry ids: bounded cardinality)."""

from prometheus_client import Counter

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
