"""The spans of events on NATS: the relay's publication (PRODUCER) and a consumer's handling (CONSUMER),
named by the event's type so one message's trace reads `publish IntentApproved`, `consume IntentApproved`,
... Attributes name the subject, the event's id and type, never its payload."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from opentelemetry.trace import Span

from libs import tracing
from libs.seedwork.ids import is_valid_id


def short_type(type_name: str) -> str:
    """`whatlead.events.v1.IntentApproved` → `IntentApproved`."""
    return type_name.rpartition(".")[2]


def publishing_span(
    service: str,
    subject: str,
    type_name: str,
    event_id: str,
    trace_context: str | None,
    headers: MutableMapping[str, str],
) -> Span | None:
    """The relay's span for one outbox row, child of the context the row stored; its own context put in
    `headers`. None when tracing is off or the row stored none."""
    if not tracing.enabled():
        return None
    return tracing.start_publishing(
        f"publish {short_type(type_name)}",
        trace_context,
        headers,
        {
            "messaging.system": "nats",
            "messaging.operation.type": "send",
            "messaging.destination.name": subject,
            "messaging.message.id": event_id,
            "whatlead.event_type": type_name,
            "whatlead.service": service,
        },
    )


def start_consuming(
    consuming: tracing.Consuming,
    *,
    service: str,
    consumer: str,
    type_name: str,
    event_id: str,
    headers: Mapping[str, str] | None,
    correlation_id: str,
    organization_id: str,
) -> None:
    """One event's CONSUMER span in `consuming`, child of the context in its message's headers."""
    if not tracing.enabled():
        return
    attributes = {
        "messaging.system": "nats",
        "messaging.operation.type": "process",
        "messaging.consumer.group.name": consumer,
        "messaging.message.id": event_id,
        "whatlead.event_type": type_name,
        "whatlead.service": service,
        "whatlead.organization_id": organization_id,
    }
    # Our own ids only (an intent's, an aggregate's): a provider event correlates by the provider's message
    # id, which can spell the recipient's phone number.
    if is_valid_id(correlation_id):
        attributes["whatlead.correlation_id"] = correlation_id
    consuming.start(f"consume {short_type(type_name)}", headers, correlation_id, attributes)
