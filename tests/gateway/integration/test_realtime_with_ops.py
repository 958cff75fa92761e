"""/v1/realtime bridged to the real ops service (in-process, real PostgreSQL and JetStream, real
authentication): an intent's life published on the contexts' streams arrives at a WebSocket as ops'
WatchIntents tells it, and a socket that reconnects with a position it was given gets exactly what came
after it, nothing lost and nothing twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from libs.seedwork.access import Role
from libs.testing.jetstream import publish
from libs.testing.services import RunningService, running_service
from ops_service.bootstrap import build
from ops_service.config import OpsSettings
from tests.conftest import NATS_URL
from tests.gateway.realtime_client import frames, running_gateway
from tests.ops_service.story import build_story

DELIVERED, READ = "INTENT_CHANGE_KIND_DELIVERED", "INTENT_CHANGE_KIND_READ"


@pytest.fixture
async def ops(migrated_database: Any, subject_root: str, jetstream: Any) -> AsyncIterator[RunningService]:
    settings = OpsSettings(
        database_url=migrated_database("ops_service"), nats_url=NATS_URL, subject_root=subject_root
    )
    async with running_service(build, settings) as service:
        yield service


async def _started(socket: ClientConnection) -> str:
    """The socket's first frame: the position its watch starts after, no change. Sent once ops watches for
    it, so everything published from then on reaches it."""
    [first] = await frames(socket, 1)
    assert set(first) == {"position"} and first["position"].isdigit(), first
    return str(first["position"])


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
            start = await _started(socket)
            received: list[dict[str, Any]] = []
            for event in story.events:
                await publish(jetstream, subject_root, event)
            await _until_read(socket, story.intent, received)

        # Only the key's organization, positions growing, each change once.
        assert {frame["change"]["organization_id"] for frame in received} == {story.org}
        positions = [int(frame["position"]) for frame in received]
        assert positions == sorted(set(positions)) and positions[0] > int(start)
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
            assert await frames(again, 1 + len(followed)) == [{"position": resume}, *followed]

        # The one intent alone, from the same position.
        mine = [frame for frame in followed if frame["change"]["intent_id"] == story.intent]
        async with gateway.as_key(key, f"?intent_id={story.intent}&after_position={resume}") as only:
            assert await frames(only, 1 + len(mine)) == [{"position": resume}, *mine]
