"""What WatchIntents streams: the changes of an intent's life, read off the timeline's facts.

    CREATED ─► QUEUED ─► APPROVED ─► SENT ─► DELIVERED ─► READ ─► REPLIED
       │         │  ▲        │        ▲
       │         └──┘        ├─► RETRY_SCHEDULED ─┘ (and again)
       ├─► BLOCKED           ├─► FAILED
       └─► DROPPED           └─► NEEDS_REVIEW

The Gate's facts (created, decided) come on one stream, the Executor's (attempts, delivery) on another,
replies on the gateway's: ops records each stream with its own consumer, so one may run ahead of another.
A change is emitted only once what causally precedes it has been (an Executor fact waits for the intent's
approval, a reply for the send it quotes); held changes are emitted right after what they waited for. So
for each intent, changes are emitted in causal order, and otherwise in the order ops recorded them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from libs.seedwork.aggregate import DomainEvent
from ops_service.domain.timeline import (
    AttemptEnded,
    DeliveryChanged,
    IntentDecided,
    IntentSubmitted,
    ProviderReported,
    TimelineRecord,
)


class ChangeKind(StrEnum):
    CREATED = "CREATED"
    QUEUED = "QUEUED"
    APPROVED = "APPROVED"
    BLOCKED = "BLOCKED"
    DROPPED = "DROPPED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    READ = "READ"
    REPLIED = "REPLIED"
    FAILED = "FAILED"
    RETRY_SCHEDULED = "RETRY_SCHEDULED"
    NEEDS_REVIEW = "NEEDS_REVIEW"


_ATTEMPTS = {
    "SENT": ChangeKind.SENT,
    "FAILED": ChangeKind.FAILED,
    "RETRY": ChangeKind.RETRY_SCHEDULED,
    "NEEDS_REVIEW": ChangeKind.NEEDS_REVIEW,
}
_DELIVERIES = {"DELIVERED": ChangeKind.DELIVERED, "READ": ChangeKind.READ}
# A change's event id comes from its fact's: the same fact always makes the same change (JetStream drops a
# repeat by it).
_CHANGES = uuid.UUID("5c0e7a3e-8f1d-4c5e-9a7b-2d4f6e8a0b1c")


@dataclass(frozen=True, kw_only=True)
class IntentChanged(DomainEvent):
    """One change of one intent (aggregate: the intent); published on its organization's subject."""

    intent_id: str
    campaign_id: str
    kind: ChangeKind
    instance_id: str
    reason: str  # the Gate's dominant reason (QUEUED, BLOCKED, DROPPED), "" else
    summary: str
    source_event_id: str  # the timeline fact it comes from
    source_event_type: str
    provider_message_id: str


def kind_of(record: TimelineRecord) -> ChangeKind | None:
    """The change a fact is, if it is one (the Gate's own SENT/FAILED marks repeat the Executor's)."""
    fact = record.fact
    match fact:
        case IntentSubmitted():
            return ChangeKind.CREATED
        case IntentDecided():
            return ChangeKind(fact.outcome) if fact.outcome in ChangeKind.__members__ else None
        case AttemptEnded():
            return _ATTEMPTS.get(fact.outcome)
        case DeliveryChanged():
            return _DELIVERIES.get(fact.status)
        case ProviderReported():
            return ChangeKind.REPLIED if is_reply(fact) else None
    return None


def is_reply(fact: ProviderReported) -> bool:
    """A contact's message quoting one of ours: the only reply ops can tie to an intent for sure."""
    return fact.incoming and bool(fact.reply_to_provider_message_id)


def waits_for_approval(kind: ChangeKind) -> bool:
    """The Executor's changes: caused by the intent's approval, emitted after it."""
    return kind in (
        ChangeKind.SENT,
        ChangeKind.FAILED,
        ChangeKind.RETRY_SCHEDULED,
        ChangeKind.NEEDS_REVIEW,
        ChangeKind.DELIVERED,
        ChangeKind.READ,
    )


def intent_of(record: TimelineRecord) -> str:
    """The intent a fact of the Gate or the Executor names ("" for any other)."""
    return str(getattr(record.fact, "intent_id", "") or "")


def change_of(record: TimelineRecord, kind: ChangeKind, *, intent_id: str, campaign_id: str) -> IntentChanged:
    """The change a fact makes to `intent_id` (its campaign found by the caller when the fact has none)."""
    fact = record.fact
    reason = ""
    if isinstance(fact, IntentDecided) and kind is not ChangeKind.APPROVED:
        reason = fact.reason
    message = getattr(fact, "provider_message_id", "") or ""
    if isinstance(fact, ProviderReported):
        message = fact.reply_to_provider_message_id
    return IntentChanged(
        event_id=str(uuid.uuid5(_CHANGES, record.recorded.event_id)),
        organization_id=record.recorded.organization_id,
        aggregate_id=intent_id,
        correlation_id=intent_id,
        occurred_at=record.recorded.occurred_at,
        intent_id=intent_id,
        campaign_id=campaign_id,
        kind=kind,
        instance_id=record.instance_id,
        reason=reason,
        summary=record.summary,
        source_event_id=record.recorded.event_id,
        source_event_type=record.recorded.type_name,
        provider_message_id=message,
    )
