"""GetIntentTimeline: every fact in an intent's life, from every context, oldest first, in one read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from libs.seedwork.errors import InvalidArgument, NotFound, Reason
from libs.seedwork.ids import is_valid_id
from libs.seedwork.organizations import require_organization
from ops_service.application.timeline_ports import Related, StoredFact, TimelineUnitOfWork

INTENT_CREATED = "whatlead.events.v1.IntentCreated"
INTENT_APPROVED = "whatlead.events.v1.IntentApproved"
# Facts that name the instance an intent went through (a decision, the executor's outcomes).
_CHOOSING = {
    "whatlead.events.v1.IntentApproved",
    "whatlead.events.v1.MessageSent",
    "whatlead.events.v1.MessageFailed",
    "whatlead.events.v1.MessageRetryScheduled",
    "whatlead.events.v1.MessageNeedsReview",
}
_SENT = {"whatlead.events.v1.MessageSent", "whatlead.events.v1.IntentSent"}
# A contact's message on the chosen number within this long after the send (and before the next intent to
# that contact on that number) is shown as a reply to it.
REPLY_HORIZON = timedelta(hours=24)
MAX_REPLIES = 20


@dataclass(frozen=True, kw_only=True)
class GetIntentTimeline:
    organization_id: str
    intent_id: str


class GetIntentTimelineHandler:
    """NotFound for an unknown intent and for another organization's (the caller cannot tell which)."""

    def __init__(self, uow: Callable[[], TimelineUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: GetIntentTimeline) -> list[StoredFact]:
        require_organization(query.organization_id)
        if not is_valid_id(query.intent_id):
            raise InvalidArgument.of("intent_id", "must be a UUID")
        async with self._uow() as uow:
            own = await uow.timeline.correlated(query.intent_id)
            own = [fact for fact in own if fact.organization_id == query.organization_id]
            if not own:
                raise NotFound(
                    f"intent {query.intent_id} not found",
                    reason=Reason.INTENT_NOT_FOUND,
                    metadata={"intent_id": query.intent_id},
                )
            related = await uow.timeline.related(related_to(query.organization_id, own))
        seen: set[str] = set()
        entries = []
        for fact in sorted(own + related, key=lambda fact: (fact.occurred_at, fact.sequence)):
            if fact.event_id not in seen:
                seen.add(fact.event_id)
                entries.append(fact)
        return entries


def related_to(organization_id: str, own: list[StoredFact]) -> Related:
    """Where to look for what touched the intent, from its own facts."""
    instances = tuple(sorted({f.instance_id for f in own if f.type_name in _CHOOSING and f.instance_id}))
    sends = [f for f in own if f.type_name in _SENT]
    first_send = min((f.occurred_at for f in sends), default=None)
    created = next((f for f in own if f.type_name == INTENT_CREATED), None)
    approved_at = max((f.occurred_at for f in own if f.type_name == INTENT_APPROVED), default=None)
    return Related(
        organization_id=organization_id,
        instance_ids=instances,
        campaign_id=next((f.campaign_id for f in own if f.campaign_id), ""),
        provider_message_ids=tuple(sorted({f.provider_message_id for f in sends if f.provider_message_id})),
        target_phone=created.remote_phone if created is not None else "",
        since=min(f.occurred_at for f in own),
        until=max(f.occurred_at for f in own),
        replies_since=first_send,
        replies_until=first_send + REPLY_HORIZON if first_send is not None else None,
        approved_at=approved_at,
        max_replies=MAX_REPLIES,
    )
