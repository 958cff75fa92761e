"""The timeline read as a story: what each fact says, which facts belong to an intent, and that
nobody learns of another organization's intent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from libs.seedwork.errors import InvalidArgument, NotFound
from libs.seedwork.ids import new_id
from ops_service.application.intent_timeline import GetIntentTimeline, GetIntentTimelineHandler
from ops_service.application.record_facts import RecordFactsHandler
from ops_service.infrastructure.timeline_mapping import record_from_event
from tests.ops_service.story import PHONE, build_story
from tests.ops_service.unit.timeline_fakes import FakeTimelineStore, FakeTimelineUnitOfWork
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import provider_events_pb2 as p

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


async def _recorded(store: FakeTimelineStore, events: list) -> None:
    await RecordFactsHandler()(FakeTimelineUnitOfWork(store), [record_from_event(e) for e in events])


async def test_the_timeline_is_the_intents_life_in_order_and_nothing_else():
    story = build_story(T0)
    store = FakeTimelineStore()
    await _recorded(store, story.events)
    timeline = await GetIntentTimelineHandler(lambda: FakeTimelineUnitOfWork(store))(
        GetIntentTimeline(organization_id=story.org, intent_id=story.intent)
    )
    assert [fact.event_id for fact in timeline] == story.timeline
    following = await GetIntentTimelineHandler(lambda: FakeTimelineUnitOfWork(store))(
        GetIntentTimeline(organization_id=story.org, intent_id=story.other_intent)
    )
    assert [fact.summary for fact in following if fact.summary.startswith("Reply")] == [
        f'Reply from {PHONE} on instance {story.chosen}: "and again"'
    ]


async def test_it_reads_as_a_story():
    story = build_story(T0)
    store = FakeTimelineStore()
    await _recorded(store, story.events)
    lines = [
        fact.summary
        for fact in await GetIntentTimelineHandler(lambda: FakeTimelineUnitOfWork(store))(
            GetIntentTimeline(organization_id=story.org, intent_id=story.intent)
        )
    ]
    chosen, refused, key = story.chosen, story.refused, story.key
    # The campaign's pause in force when it came, then lifted: it held the intent.
    assert lines[0] == f"API key {key} paused the campaign {story.campaign}: MANUAL (checking the number)"
    assert lines[1] == f"Submitted by API key {key}: TEXT to {PHONE} for DISPATCH, campaign {story.campaign}"
    assert lines[2] == f"API key {key} resumed the campaign {story.campaign}: MANUAL"
    assert lines[3] == (
        f"APPROVED through instance {chosen} (WAHA); candidates: {chosen} ALLOW score 0.82 (chosen); "
        f"{refused} RECOVERABLE RATE_LIMIT"
    )
    assert lines[4] == f"API key {key} paused the instance {chosen}: MANUAL (checking the number)"
    assert lines[5] == f"API key {key} resumed the instance {chosen}: MANUAL"
    assert (
        lines[6]
        == "attempt 1 (started 14:00:00, ended 14:00:00) failed: TRANSIENT http_503; next attempt at 14:00:01"
    )
    assert lines[7].startswith(
        "Sent by WAHA on attempt 2 (started 14:00:01, ended 14:00:02) through instance"
    )
    assert lines[8] == f"The Gate marked the intent SENT through instance {chosen}"
    message = f"true_{PHONE}@c.us_{story.intent[-12:]}"
    assert lines[9] == f"Provider WAHA reported the message sent ({message})"
    assert lines[10] == f"Instance {chosen} cooling down until 15:00:02: REACHOUT_TIMELOCK"
    assert lines[11] == f"Provider WAHA reported the message delivered ({message})"
    assert lines[12:14] == ["DELIVERED at 14:00:03", "READ at 14:00:04"]
    assert lines[14] == f'Reply from {PHONE} on instance {chosen}: "yes please"'


async def test_a_redelivered_fact_is_recorded_and_counted_once():
    story = build_story(T0)
    store = FakeTimelineStore()
    await _recorded(store, story.events)
    counted = len(store.deltas)
    await _recorded(store, story.events[:5])
    assert len(store.facts) == len(story.events) and len(store.deltas) == counted


async def test_another_organizations_intent_is_not_found_like_an_unknown_one():
    story = build_story(T0)
    store = FakeTimelineStore()
    await _recorded(store, story.events)
    handler = GetIntentTimelineHandler(lambda: FakeTimelineUnitOfWork(store))
    with pytest.raises(NotFound) as other_org:
        await handler(GetIntentTimeline(organization_id=story.other_org, intent_id=story.intent))
    unknown_id = new_id()
    with pytest.raises(NotFound) as unknown:
        await handler(GetIntentTimeline(organization_id=story.org, intent_id=unknown_id))
    assert str(other_org.value).replace(story.intent, "?") == str(unknown.value).replace(unknown_id, "?")
    with pytest.raises(InvalidArgument):
        await handler(GetIntentTimeline(organization_id=story.org, intent_id="not-a-uuid"))


def _reply(jid: str, *, quoted: str = "") -> p.ProviderEventReceived:
    return p.ProviderEventReceived(
        meta=common_pb2.EventMeta(
            event_id=new_id(), organization_id="o", occurred_at=Timestamp(seconds=1_800_000_000)
        ),
        type=p.PROVIDER_EVENT_TYPE_MESSAGE_REPLIED,
        instance_id=new_id(),
        provider_message_id="in-1",
        remote_jid=jid,
        reply_to_provider_message_id=quoted,
    )


def test_a_reply_is_found_by_its_senders_phone_or_by_the_message_it_quotes():
    by_phone = record_from_event(_reply(f"{PHONE}@s.whatsapp.net"))
    assert by_phone.remote_phone == PHONE and by_phone.provider_message_id == ""
    hidden = record_from_event(_reply("1203630@lid", quoted="ours-1"))
    assert hidden.remote_phone == "" and hidden.provider_message_id == "ours-1"
    assert record_from_event(_reply("1203630-99@g.us")).remote_phone == ""
