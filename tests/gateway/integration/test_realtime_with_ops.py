"""/v1/realtime bridged to the real ops service (in-process, real PostgreSQL and JetStream, real
authentication): an intent's life published on the contexts' streams arrives at a WebSocket as ops'
WatchIntents tells it, and a socket that reconnects with a position it was given gets exactly what came
after it, nothing lost and nothing twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from libs.seedwork.access import Role
from libs.seedwork.ids import new_id
from libs.testing.jetstream import meta, publish
from libs.testing.services import RunningService, running_service
from ops_service.bootstrap import build
from ops_service.config import OpsSettings
from tests.conftest import NATS_URL
from tests.gateway.realtime_client import frames, running_gateway
from tests.ops_service.story import build_story
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import gate_events_pb2
from whatlead.gate.v1 import gate_pb2

DELIVERED, READ = "INTENT_CHANGE_KIND_DELIVERED", "INTENT_CHANGE_KIND_READ"


@pytest.fixture
async def ops(migrated_database: Any, subject_root: str, jetstream: Any) -> AsyncIterator[RunningService]:
    settings = OpsSettings(
        database_url=migrated_database("ops_service"), nats_url=NATS_URL, subject_root=subject_root
    )
    async with running_service(build, settings) as service:
        yield service


def _created(org: str, intent: str) -> gate_events_pb2.IntentCreated:
    event_meta = meta(org, intent)
    return gate_events_pb2.IntentCreated(
        meta=event_meta,
        intent=gate_pb2.MessageIntent(
            id=intent,
            organization_id=org,
            target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value="5511900000000"),
            type=common_pb2.MESSAGE_TYPE_TEXT,
            purpose=common_pb2.PURPOSE_DISPATCH,
            created_at=event_meta.occurred_at,
        ),
    )


async def _watching(socket: ClientConnection, js: Any, root: str, org: str) -> list[dict[str, Any]]:
    """Publishes a new intent of `org` until one reaches the socket: from then on, the watch it opened
    "from now" sees everything published. The frames that reached it so far."""
    for _ in range(30):
        await publish(js, root, _created(org, new_id()))
        try:
            return [json.loads(await asyncio.wait_for(socket.recv(), 2))]
        except TimeoutError:
            continue
    raise AssertionError("no change of the organization ever reached the socket")


async def _until_read(socket: ClientConnection, intent: str, received: list[dict[str, Any]]) -> None:
    """Reads frames until the intent's READ (its story's last change of its own) has arrived."""
    while not any(
        f["change"]["intent_id"] == intent and f["change"]["kind"] == "INTENT_CHANGE_KIND_READ"
        for f in received
    ):
        received.extend(await frames(socket, 1))


async def test_an_intent_s_changes_reach_the_socket_and_a_resume_gets_exactly_what_followed(
    ops: RunningService, jetstream: Any, subject_root: str
):
    story = build_story(datetime.now(UTC) - timedelta(minutes=5))
    key = ops.key(story.org, Role.MEMBER)
    async with running_gateway(ops.address) as gateway:
        async with gateway.as_browser(key) as socket:
            received = await _watching(socket, jetstream, subject_root, story.org)
            for event in story.events:
                await publish(jetstream, subject_root, event)
            await _until_read(socket, story.intent, received)

        # Only the key's organization, positions growing, each change once.
        assert {frame["change"]["organization_id"] for frame in received} == {story.org}
        positions = [int(frame["position"]) for frame in received]
        assert positions == sorted(set(positions))
        ours = [frame for frame in received if frame["change"]["intent_id"] == story.intent]
        kinds = [frame["change"]["kind"] for frame in ours]
        assert kinds[0] == "INTENT_CHANGE_KIND_CREATED"
        assert {
            "INTENT_CHANGE_KIND_APPROVED",
            "INTENT_CHANGE_KIND_SENT",
            "INTENT_CHANGE_KIND_DELIVERED",
        } <= set(kinds)

        # Reconnect after the intent's first change: exactly what the first socket got after it.
        resume = ours[0]["position"]
        followed = received[received.index(ours[0]) + 1 :]
        async with gateway.as_key(key, f"?after_position={resume}") as again:
            assert await frames(again, len(followed)) == followed

        # The one intent alone, from the same position.
        mine = [frame for frame in followed if frame["change"]["intent_id"] == story.intent]
        async with gateway.as_key(key, f"?intent_id={story.intent}&after_position={resume}") as only:
            assert await frames(only, len(mine)) == mine
