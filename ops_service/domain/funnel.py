"""The stages of the sending funnel, as the timeline's facts show them: submitted, approved, sent, then
delivered, read, replied, or failed (final). Each fact is at most one stage (an intent queued first and
approved later is approved once)."""

from __future__ import annotations

from ops_service.domain.timeline import (
    AttemptEnded,
    DeliveryChanged,
    Fact,
    IntentDecided,
    IntentSubmitted,
    ProviderReported,
)

STAGES = ("submitted", "approved", "sent", "delivered", "read", "replied", "failed")


def funnel_stage(fact: Fact) -> str | None:
    match fact:
        case IntentSubmitted():
            return "submitted"
        case IntentDecided() if fact.outcome == "APPROVED":
            return "approved"
        case AttemptEnded() if fact.outcome in ("SENT", "FAILED"):
            return fact.outcome.lower()
        case DeliveryChanged() if fact.status in ("DELIVERED", "READ"):
            return fact.status.lower()
        case ProviderReported() if fact.incoming and fact.remote_phone:
            # A contact writing in a person's chat: what the timeline shows as a reply (ours are outreach),
            # not only the replies that quote our message (intent_changes.is_reply).
            return "replied"
    return None
