"""Prometheus series of the messaging plumbing, labelled by service so one dashboard serves all."""

from prometheus_client import Counter, Gauge

OUTBOX_PUBLISHED = Counter(
    "whatlead_outbox_published_total", "Events the relay published to JetStream", ["service"]
)
OUTBOX_DUPLICATES = Counter(
    "whatlead_outbox_duplicates_total",
    "Publications JetStream recognised as already stored (a relay re-sent after a crash)",
    ["service"],
)
OUTBOX_PUBLISH_ERRORS = Counter(
    "whatlead_outbox_publish_errors_total",
    "Relay passes that failed to publish (NATS down or slow)",
    ["service"],
)
OUTBOX_PARKED = Counter(
    "whatlead_outbox_parked_total",
    "Outbox events parked for review after JetStream refused them max_attempts times (ADR 0031)",
    ["service"],
)
OUTBOX_PENDING = Gauge(
    "whatlead_outbox_pending", "Unpublished outbox rows seen by the last relay pass", ["service"]
)
CONSUMER_HANDLED = Counter(
    "whatlead_events_handled_total", "Events a consumer applied and acked", ["service", "consumer", "type"]
)
CONSUMER_DUPLICATES = Counter(
    "whatlead_events_duplicate_total",
    "Redelivered events the inbox recognised and skipped",
    ["service", "consumer"],
)
CONSUMER_IGNORED = Counter(
    "whatlead_events_ignored_total",
    "Events acked without a handler (types this consumer does not use)",
    ["service", "consumer"],
)
CONSUMER_FAILURES = Counter(
    "whatlead_events_failed_total",
    "Handler failures; the event is redelivered later",
    ["service", "consumer"],
)
CONSUMER_PARKED = Counter(
    "whatlead_events_parked_total",
    "Events a consumer gave up on (they kept failing, or do not decode): terminated, kept in the stream",
    ["service", "consumer", "type"],
)
CONSUMER_OUTAGES = Counter(
    "whatlead_consumer_outages_total",
    "Batches handed back whole because a store was unavailable",
    ["service", "consumer"],
)
