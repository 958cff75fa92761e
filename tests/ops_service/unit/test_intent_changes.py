"""The intent changes ops emits as it records facts: one per change, only for fresh facts, and per intent in
causal order even when another context's consumer runs ahead (an Executor fact waits for the approval, a
reply for the send it quotes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.message import Message

from ops_service.application.record_facts import RecordFactsHandler
from ops_service.domain.intent_changes import ChangeKind, IntentChanged
from ops_service.infrastructure.timeline_mapping import record_from_event
from tests.ops_service import story as stories
from tests.ops_service.story import PHONE, Story, build_story
from tests.ops_service.unit.timeline_fakes import FakeTimelineStore, FakeTimelineUnitOfWork
from whatlead.events.v1 import provider_events_pb2 as p

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
K = ChangeKind


async def recorded(store: FakeTimelineStore, events: Sequence[Message]) -> list[IntentChanged]:
    uow = FakeTimelineUnitOfWork(store)
    async with uow:
        result = await RecordFactsHandler()(uow, [record_from_event(e) for e in events])
        await uow.commit()
    assert uow.committed_events == result.changes  # in the facts' transaction (the outbox)
    return result.changes


def kinds(changes: list[IntentChanged], intent: str) -> list[ChangeKind]:
    return [c.kind for c in changes if c.intent_id == intent]


def quoted_reply(s: Story, seconds: float, message: str) -> p.ProviderEventReceived:
    reply = stories._provider(
        s, seconds, p.PROVIDER_EVENT_TYPE_MESSAGE_REPLIED, message="3EB0F6", from_me=False, text="ok"
    )
    reply.reply_to_provider_message_id = message
    return reply


async def test_each_change_of_an_intents_life_once_in_order_with_its_campaign() -> None:
    story = build_story(T0)
    store = FakeTimelineStore()
    changes = await recorded(store, story.events)
    assert kinds(changes, story.intent) == [
        K.CREATED,
        K.APPROVED,
        K.RETRY_SCHEDULED,
        K.SENT,
        K.DELIVERED,
        K.READ,
    ]
    assert kinds(changes, story.other_intent) == [K.CREATED, K.QUEUED, K.APPROVED, K.SENT, K.FAILED]
    queued = next(c for c in changes if c.kind is K.QUEUED)
    assert queued.reason == "CONTACT_MIN_INTERVAL"
    mine = [c for c in changes if c.organization_id == story.org]
    assert {c.campaign_id for c in mine} == {story.campaign}
    sent = next(c for c in changes if c.intent_id == story.intent and c.kind is K.SENT)
    assert sent.instance_id == story.chosen and sent.provider_message_id.endswith(story.intent[-12:])
    # Submitted again (a redelivery): recorded already, no change again.
    assert await recorded(store, story.events) == []


async def test_the_executors_facts_wait_for_the_approval_ops_records_later() -> None:
    s = Story(T0)
    message = f"true_{PHONE}@c.us_{s.intent[-12:]}"
    store = FakeTimelineStore()
    executor = [stories._sent(s, 2, s.intent, message, attempts=1, started=1)]
    assert await recorded(store, executor) == []
    gate = [stories._created(s, 0, s.intent, actor="service"), stories._approved(s, 0.1, s.intent)]
    assert kinds(await recorded(store, gate), s.intent) == [K.CREATED, K.APPROVED, K.SENT]


async def test_a_reply_waits_for_the_send_it_quotes() -> None:
    s = Story(T0)
    message = f"true_{PHONE}@c.us_{s.intent[-12:]}"
    store = FakeTimelineStore()
    assert await recorded(store, [quoted_reply(s, 5, message)]) == []
    gate = [stories._created(s, 0, s.intent, actor="service"), stories._approved(s, 0.1, s.intent)]
    assert kinds(await recorded(store, gate), s.intent) == [K.CREATED, K.APPROVED]
    changes = await recorded(store, [stories._sent(s, 2, s.intent, message, attempts=1, started=1)])
    assert kinds(changes, s.intent) == [K.SENT, K.REPLIED]
    # A reply that comes once its send is out is emitted at once.
    later = await recorded(store, [quoted_reply(s, 6, message)])
    assert kinds(later, s.intent) == [K.REPLIED]


async def test_a_reply_to_a_send_held_for_its_approval_comes_after_both() -> None:
    s = Story(T0)
    message = f"true_{PHONE}@c.us_{s.intent[-12:]}"
    store = FakeTimelineStore()
    assert await recorded(store, [stories._sent(s, 2, s.intent, message, attempts=1, started=1)]) == []
    assert await recorded(store, [quoted_reply(s, 5, message)]) == []
    gate = [stories._created(s, 0, s.intent, actor="service"), stories._approved(s, 0.1, s.intent)]
    assert kinds(await recorded(store, gate), s.intent) == [K.CREATED, K.APPROVED, K.SENT, K.REPLIED]


async def test_consumers_serialize_on_intents_before_messages() -> None:
    s = Story(T0)
    message = f"true_{PHONE}@c.us_{s.intent[-12:]}"
    store = FakeTimelineStore()
    await recorded(store, [stories._sent(s, 2, s.intent, message, attempts=1, started=1)])
    assert store.serialized == [[f"intent:{s.intent}"], [f"message:{s.chosen}:{message}"]]
