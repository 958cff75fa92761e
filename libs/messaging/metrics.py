"""Prometheus series of the messaging plumbing, labelled by service so one dashboard serves all."""

from datetime import datetime

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
# Gauges read from a shared store (the database, JetStream): every process of a pod reads the same, so
# in multiprocess mode (libs.metrics_endpoint) the most recent reading stands.
OUTBOX_PENDING = Gauge(
    "whatlead_outbox_pending",
    "Unpublished outbox rows (parked ones aside), as of the last backlog check",
    ["service"],
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST_AGE = Gauge(
    "whatlead_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row (parked ones aside), as of the last backlog check; 0 when none",
    ["service"],
    multiprocess_mode="mostrecent",
)
CONSUMER_PENDING = Gauge(
    "whatlead_consumer_pending_messages",
    "Messages of its stream a durable consumer has not been delivered yet (JetStream's num_pending)",
    ["service", "consumer"],
    multiprocess_mode="mostrecent",
)
CONSUMER_ACK_PENDING = Gauge(
    "whatlead_consumer_ack_pending_messages",
    "Messages delivered to a durable consumer and not acked yet (JetStream's num_ack_pending)",
    ["service", "consumer"],
    multiprocess_mode="mostrecent",
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
    "Events acked without a handler (types this consumer does not use, or events its handler does not)",
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


def report_outbox_backlog(service: str, pending: int, oldest: datetime | None, now: datetime) -> None:
    """The outbox backlog as a relay's check found it: `oldest` the creation of the oldest waiting row."""
    OUTBOX_PENDING.labels(service).set(pending)
    OUTBOX_OLDEST_AGE.labels(service).set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)


def report_consumer_lag(service: str, consumer: str, pending: int, ack_pending: int) -> None:
    """A durable consumer's lag as JetStream's consumer info gave it."""
    CONSUMER_PENDING.labels(service, consumer).set(pending)
    CONSUMER_ACK_PENDING.labels(service, consumer).set(ack_pending)
