"""WatchIntents as clients see it, on the running ops service over real PostgreSQL and JetStream: an
organization's intent changes live, resumed from a position (nothing lost, nothing twice), to many watchers
at once, filtered, and a watcher that stops reading cut off without holding the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from libs.messaging import envelope
from libs.seedwork.ids import new_id
from libs.testing.jetstream import intent_changed, publish
from libs.testing.services import RunningService, running_service
from libs.testing.waiting import eventually
from ops_service.bootstrap import build
from ops_service.config import OpsSettings
from tests.conftest import NATS_URL
from tests.ops_service.story import build_story
from whatlead.events.v1 import ops_events_pb2
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

K = ops_pb2.IntentChangeKind
LIFE = [
    ops_pb2.INTENT_CHANGE_KIND_CREATED,
    ops_pb2.INTENT_CHANGE_KIND_APPROVED,
    ops_pb2.INTENT_CHANGE_KIND_SENT,
    ops_pb2.INTENT_CHANGE_KIND_DELIVERED,
]
STREAM_SECONDS = 60.0  # every stream call sets a deadline; generous, nothing here waits that long
TIGHT_BUFFER = 64  # per watcher, where a test wants a watcher that stops reading cut off soon
RING = 100  # recent changes kept in memory: a position further back is caught up from the stream


@pytest.fixture
def watch_buffer() -> int:
    return int(OpsSettings.model_fields["watch_buffer"].default)


@pytest.fixture
async def ops(
    migrated_database: Any, subject_root: str, jetstream: Any, watch_buffer: int
) -> AsyncIterator[RunningService]:
    settings = OpsSettings(
        database_url=migrated_database("ops_service"),
        nats_url=NATS_URL,
        subject_root=subject_root,
        watch_buffer=watch_buffer,
        watch_ring=RING,
    )
    async with running_service(build, settings) as service:
        yield service


@pytest.fixture
def stub(ops: RunningService) -> ops_pb2_grpc.OpsServiceStub:
    return ops_pb2_grpc.OpsServiceStub(ops.channel)


def change(org: str, intent: str, kind: int, *, campaign: str = "") -> ops_events_pb2.IntentChanged:
    return intent_changed(org, intent, kind, campaign_id=campaign)  # type: ignore[arg-type]


async def published(js: Any, root: str, changes: list[ops_events_pb2.IntentChanged]) -> list[int]:
    """Published as the outbox relay publishes them; their positions (stream sequences)."""
    positions = []
    for event in changes:
        await publish(js, root, event)
        positions.append(await _last_sequence(js, root))
    return positions


async def _last_sequence(js: Any, root: str) -> int:
    return int((await js.stream_info(envelope.stream_name(root, "ops"))).state.last_seq)


def watch(stub: ops_pb2_grpc.OpsServiceStub, org: str, **fields: str) -> Any:
    return stub.WatchIntents(
        ops_pb2.WatchIntentsRequest(organization_id=org, **fields), timeout=STREAM_SECONDS
    )


async def read(call: Any, count: int) -> list[ops_pb2.WatchIntentsResponse]:
    got: list[ops_pb2.WatchIntentsResponse] = []
    while len(got) < count:
        response = await asyncio.wait_for(call.read(), 20)
        assert response is not grpc.aio.EOF, f"the stream ended after {len(got)} of {count}"
        got.append(response)
    return got


async def nothing_more(call: Any) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(call.read()), 0.5)


def open_watchers() -> float:
    return REGISTRY.get_sample_value("whatlead_ops_intent_watchers") or 0.0


async def watching(*calls: Any) -> list[Any]:
    """Once the server watches for each of these new streams: what is published from now on reaches them
    (the server's gauge says it)."""
    started = open_watchers()  # (a call starts as it is made)
    await eventually(lambda: _at_least(started + len(calls)), timeout=20)
    return list(calls)


async def _at_least(count: float) -> bool:
    return open_watchers() >= count


async def test_an_intents_life_recorded_by_ops_reaches_a_watcher_in_order(
    stub: ops_pb2_grpc.OpsServiceStub, jetstream: Any, subject_root: str
) -> None:
    story = build_story(datetime.now(UTC) - timedelta(minutes=5))
    call = watch(stub, story.org, intent_id=story.intent)
    await watching(call)
    for event in story.events:
        await publish(jetstream, subject_root, event)
    responses = await read(call, 6)
    assert [r.change.kind for r in responses] == [
        ops_pb2.INTENT_CHANGE_KIND_CREATED,
        ops_pb2.INTENT_CHANGE_KIND_APPROVED,
        ops_pb2.INTENT_CHANGE_KIND_RETRY_SCHEDULED,
        ops_pb2.INTENT_CHANGE_KIND_SENT,
        ops_pb2.INTENT_CHANGE_KIND_DELIVERED,
        ops_pb2.INTENT_CHANGE_KIND_READ,
    ]
    assert all(r.change.campaign_id == story.campaign for r in responses)
    positions = [int(r.position) for r in responses]
    assert positions == sorted(positions)
    call.cancel()


async def test_resuming_after_the_thousandth_change_gives_exactly_the_changes_after_it(
    stub: ops_pb2_grpc.OpsServiceStub, jetstream: Any, subject_root: str
) -> None:
    org, intents = new_id(), [new_id() for _ in range(300)]
    changes = [change(org, intent, kind) for intent in intents for kind in LIFE][:1200]
    positions = await published(jetstream, subject_root, changes)
    expected = [(c.change.intent_id, c.change.kind) for c in changes[1000:]]
    # From the stream (older than the ring), then from the ring (its last 100): the same answer.
    for after in (positions[999], positions[1099]):
        call = watch(stub, org, after_position=str(after))
        skipped = positions.index(after) + 1 - 1000
        responses = await read(call, len(expected) - skipped)
        assert [(r.change.intent_id, r.change.kind) for r in responses] == expected[skipped:]
        assert [int(r.position) for r in responses] == positions[1000 + skipped :]
        live = await published(jetstream, subject_root, [change(org, intents[0], LIFE[0])])
        assert [int(r.position) for r in await read(call, 1)] == live
        await nothing_more(call)
        call.cancel()
        expected.append((intents[0], LIFE[0]))
        positions += live


async def start_position(call: Any) -> str:
    metadata = await asyncio.wait_for(call.initial_metadata(), 20)
    return str(dict(metadata)["whatlead-position"])


async def test_a_watch_cut_before_its_first_change_resumes_from_the_position_its_headers_gave(
    stub: ops_pb2_grpc.OpsServiceStub, jetstream: Any, subject_root: str
) -> None:
    org, intent = new_id(), new_id()
    await published(jetstream, subject_root, [change(new_id(), new_id(), LIFE[0]) for _ in range(3)])
    first = watch(stub, org)
    start = await start_position(first)  # before any change of the organization
    assert 0 <= int(start) <= await _last_sequence(jetstream, subject_root)
    first.cancel()  # cut off before its first change

    missed = await published(jetstream, subject_root, [change(org, intent, kind) for kind in LIFE])
    resumed = watch(stub, org, after_position=start)
    assert await start_position(resumed) == start
    assert [int(r.position) for r in await read(resumed, len(LIFE))] == missed
    await nothing_more(resumed)
    resumed.cancel()


async def test_two_hundred_watchers_of_an_organization_each_see_every_change_in_order_per_intent(
    stub: ops_pb2_grpc.OpsServiceStub, jetstream: Any, subject_root: str
) -> None:
    org, intents = new_id(), [new_id() for _ in range(100)]
    calls = [watch(stub, org) for _ in range(200)]
    await watching(*calls)
    # 100 intents in flight together: their changes interleave on the stream.
    changes = [change(org, intent, kind) for kind in LIFE for intent in intents]
    await published(jetstream, subject_root, changes)
    seen = await asyncio.gather(*(read(call, len(changes)) for call in calls))
    for responses in seen:
        per_intent: dict[str, list[int]] = {}
        for response in responses:
            per_intent.setdefault(response.change.intent_id, []).append(response.change.kind)
        assert per_intent == dict.fromkeys(intents, LIFE)
    for call in calls:
        call.cancel()


@pytest.mark.parametrize("watch_buffer", [TIGHT_BUFFER])
async def test_a_watcher_that_stops_reading_is_cut_off_and_the_others_get_everything(
    stub: ops_pb2_grpc.OpsServiceStub, jetstream: Any, subject_root: str
) -> None:
    org, intent = new_id(), new_id()
    stuck, *readers = await watching(*(watch(stub, org) for _ in range(6)))
    first = await published(jetstream, subject_root, [change(org, intent, LIFE[0])])
    assert [int(r.position) for r in await read(stuck, 1)] == first
    for reader in readers:
        await read(reader, 1)
    # Large changes, in rounds the readers keep up with (a round is half their buffer, so a reader slowed by
    # a busy machine is never cut off); the stuck watcher reads nothing more: its transport's window fills,
    # the server's writes to it wait, then its buffer fills.
    size = TIGHT_BUFFER // 2
    rounds = 2000 // size
    for _ in range(rounds):
        big = [change(org, intent, LIFE[1]) for _ in range(size)]
        for event in big:
            event.change.summary = "x" * 4000
        positions = await published(jetstream, subject_root, big)
        for responses in await asyncio.gather(*(read(reader, size) for reader in readers)):
            assert [int(r.position) for r in responses] == positions
    with pytest.raises(grpc.aio.AioRpcError) as cut:
        while await asyncio.wait_for(stuck.read(), 20) is not grpc.aio.EOF:
            pass
    assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = cut.value.details() or ""
    assert f"fell {TIGHT_BUFFER} changes behind" in details and "resume with after_position=" in details
    assert int(details.rsplit("=", 1)[1]) >= first[0]
    for reader in readers:
        reader.cancel()


async def test_filters_by_intent_and_by_campaign(
    stub: ops_pb2_grpc.OpsServiceStub, jetstream: Any, subject_root: str
) -> None:
    org, campaign = new_id(), new_id()
    mine, in_campaign, other = new_id(), new_id(), new_id()
    by_intent = watch(stub, org, intent_id=mine)
    by_campaign = watch(stub, org, campaign_id=campaign)
    another_org = watch(stub, new_id())
    await watching(by_intent, by_campaign, another_org)
    await published(
        jetstream,
        subject_root,
        [
            change(org, other, LIFE[0]),
            change(org, mine, LIFE[0]),
            change(org, in_campaign, LIFE[0], campaign=campaign),
            change(org, mine, LIFE[1]),
        ],
    )
    assert [(r.change.intent_id, r.change.kind) for r in await read(by_intent, 2)] == [
        (mine, LIFE[0]),
        (mine, LIFE[1]),
    ]
    assert [r.change.intent_id for r in await read(by_campaign, 1)] == [in_campaign]
    for call in (by_intent, by_campaign, another_org):
        await nothing_more(call)
        call.cancel()


async def test_a_position_older_than_the_stream_keeps_is_out_of_range(
    stub: ops_pb2_grpc.OpsServiceStub, jetstream: Any, subject_root: str
) -> None:
    org = new_id()
    # More than the ring keeps: the first of them is only in the stream...
    positions = await published(
        jetstream, subject_root, [change(org, new_id(), LIFE[0]) for _ in range(RING + 10)]
    )
    # ... and the stream's limits removed what came before the last of them.
    await jetstream.purge_stream(envelope.stream_name(subject_root, "ops"), seq=positions[-1])
    call = watch(stub, org, after_position=str(positions[0]))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call.read()
    assert refused.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert f"after_position {positions[0]} is older than" in (refused.value.details() or "")


@pytest.mark.parametrize("position", ["abc", "-1", "1.5", "99999999999999999999"])
async def test_a_position_that_is_not_one_is_an_invalid_argument(
    stub: ops_pb2_grpc.OpsServiceStub, position: str
) -> None:
    call = watch(stub, new_id(), after_position=position)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call.read()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "after_position" in (refused.value.details() or "")


async def test_no_durable_consumer_reads_the_per_organization_feed(
    stub: ops_pb2_grpc.OpsServiceStub, jetstream: Any, subject_root: str
) -> None:
    stream = envelope.stream_name(subject_root, "ops")
    durables = ["ops-timeline-ops", "ops-key-directory"]  # ops' consumers of its own stream

    async def idle() -> bool:  # started, and done with what the stream held before
        infos = {info.name: info for info in await jetstream.consumers_info(stream)}
        return all(
            name in infos and infos[name].num_pending == 0 and infos[name].num_ack_pending == 0
            for name in durables
        )

    await eventually(idle, timeout=20)
    before = {name: (await jetstream.consumer_info(stream, name)).delivered.consumer_seq for name in durables}
    await published(jetstream, subject_root, [change(new_id(), new_id(), LIFE[0]) for _ in range(20)])
    await asyncio.sleep(0.5)  # what a consumer of the whole stream would have been given by now
    assert await idle()
    after = {name: (await jetstream.consumer_info(stream, name)).delivered.consumer_seq for name in durables}
    assert after == before
