"""Prometheus series of the ops context (labels never carry ids: bounded cardinality)."""

from prometheus_client import Counter, Gauge

PAUSES = Counter("whatlead_ops_pauses_total", "Scopes paused (or paused again), by scope", ["scope"])
RESUMES = Counter(
    "whatlead_ops_resumes_total",
    "Paused scopes resumed, by scope and reason (EXPIRED: a timed pause that reached its end)",
    ["scope", "reason"],
)
API_KEYS_CREATED = Counter("whatlead_ops_api_keys_created_total", "API keys issued, by role", ["role"])
API_KEYS_REVOKED = Counter("whatlead_ops_api_keys_revoked_total", "API keys revoked, by role", ["role"])
WATCHERS = Gauge(
    "whatlead_ops_intent_watchers", "WatchIntents streams open on this process", multiprocess_mode="livesum"
)
WATCH_DELIVERIES = Counter(
    "whatlead_ops_intent_watch_deliveries_total", "Intent changes written to WatchIntents streams"
)
WATCH_CUT_OFFS = Counter(
    "whatlead_ops_intent_watch_cut_offs_total",
    "WatchIntents streams ended RESOURCE_EXHAUSTED: the watcher fell a whole buffer behind",
)
