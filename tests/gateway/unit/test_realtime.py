"""/v1/realtime as a browser or a program reaches it: a real WebSocket client (the `websockets` library)
against the gateway served by uvicorn as production serves it (tests/gateway/realtime_client.py), bridged
to a hand-written OpsService behind the real gRPC server wrapper (tests/gateway/fake_ops.py). No database,
no NATS: the webhook side is faked."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.infrastructure.ops_changes import change_json
from libs.seedwork.access import Role
from libs.seedwork.ids import new_id
from libs.testing.waiting import eventually
from tests.gateway.fake_ops import Context, ServedOps, WatchCall, change, served_fake_ops
from tests.gateway.realtime_client import RealtimeGateway, closed, frames, http_status
from tests.gateway.realtime_client import running_gateway as serving_gateway
from whatlead.ops.v1 import ops_pb2

SENT, DELIVERED, READ = (
    ops_pb2.INTENT_CHANGE_KIND_SENT,
    ops_pb2.INTENT_CHANGE_KIND_DELIVERED,
    ops_pb2.INTENT_CHANGE_KIND_READ,
)


@dataclass
class Gateway(RealtimeGateway):
    ops: ServedOps


@asynccontextmanager
async def running_gateway(
    ops: ServedOps | None = None, stop: asyncio.Event | None = None, **settings: Any
) -> AsyncIterator[Gateway]:
    """The gateway bridged to `ops` (a fake one of its own when not given)."""
    async with (
        served_fake_ops() if ops is None else _as_is(ops) as served,
        serving_gateway(served.address, stop=stop, **settings) as running,
    ):
        yield Gateway(running.url, served)


@asynccontextmanager
async def _as_is(ops: ServedOps) -> AsyncIterator[ServedOps]:
    yield ops


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with running_gateway() as running:
        yield running


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- Authentication -------------------------------------------------------------------------------------


async def test_a_key_in_the_authorization_header_is_what_ops_sees_and_changes_arrive_as_json_frames(
    gateway: Gateway,
):
    org, intent = new_id(), new_id()
    key = gateway.ops.key(org)
    published = [change(org, intent, kind, position) for position, kind in ((7, SENT), (9, DELIVERED))]
    async with gateway.as_key(key) as socket:
        await eventually(lambda: _has_calls(gateway, 1))
        for response in [change(new_id(), intent, READ, 8), *published]:  # another organization's first
            await gateway.ops.service.publish(response)
        received = await frames(socket, 2)

    assert received == [json.loads(change_json(response)) for response in published]
    assert [frame["position"] for frame in received] == ["7", "9"]
    assert received[0]["change"]["kind"] == "INTENT_CHANGE_KIND_SENT"
    assert received[0]["change"]["intent_id"] == intent
    [call] = gateway.ops.service.calls
    assert call.credential == key  # the caller's own; the gateway has none
    assert call.request.organization_id == org  # filled in by ops from the key


async def _has_calls(gateway: Gateway, count: int) -> bool:
    return len(gateway.ops.service.calls) >= count


async def test_a_browser_presents_its_key_as_a_subprotocol_and_is_answered_whatlead_v1_alone(
    gateway: Gateway,
):
    org = new_id()
    key = gateway.ops.key(org)
    async with gateway.as_browser(key) as socket:
        assert socket.subprotocol == "whatlead.v1"
        assert socket.response is not None
        assert socket.response.headers.get_all("Sec-WebSocket-Protocol") == ["whatlead.v1"]
        assert key not in str(socket.response.headers)
        await eventually(lambda: _has_calls(gateway, 1))
        await gateway.ops.service.publish(change(org, new_id(), SENT, 1))
        [frame] = await frames(socket, 1)

    assert frame["position"] == "1"
    assert gateway.ops.service.calls[0].credential == key


async def test_the_key_is_never_logged(gateway: Gateway, caplog: pytest.LogCaptureFixture):
    key = gateway.ops.key(new_id())
    caplog.set_level(logging.DEBUG)
    async with gateway.as_browser(key) as socket:
        await eventually(lambda: _has_calls(gateway, 1))
    async with gateway.as_key(key + "x") as socket:
        await closed(socket)

    gateway_side = [record for record in caplog.records if not record.name.startswith("websockets.client")]
    assert gateway_side
    assert not [record for record in gateway_side if key in record.getMessage()]


@pytest.mark.parametrize(
    ("credential", "reason"),
    [
        (None, "unauthenticated: present an API key"),
        ("wl_abcdefgh_not-a-key-ops-knows", "unauthenticated: present an API key"),
    ],
    ids=["no key", "a key ops does not know"],
)
async def test_a_socket_without_a_key_ops_accepts_is_closed_4401(
    gateway: Gateway, credential: str | None, reason: str
):
    async with gateway.connect() if credential is None else gateway.as_browser(credential) as socket:
        code, said = await closed(socket)

    assert code == 4401 and said.startswith(reason)


async def test_a_credential_that_may_not_watch_is_closed_4403(gateway: Gateway):
    # The deployment's service credential authenticates, but WatchIntents is for organizations' keys.
    async with gateway.as_key(gateway.ops.service_credential) as socket:
        code, reason = await closed(socket)

    assert (code, reason) == (4403, "forbidden: the caller may not do this")


async def test_a_bearer_subprotocol_without_whatlead_v1_is_closed_4400(gateway: Gateway):
    key = gateway.ops.key(new_id())
    async with gateway.connect(subprotocols=[f"bearer.{key}"]) as socket:
        assert socket.subprotocol is None  # the key is never echoed
        code, reason = await closed(socket)

    assert code == 4400 and "whatlead.v1" in reason
    assert gateway.ops.service.calls == []


# --- The query ------------------------------------------------------------------------------------------


async def test_the_query_becomes_the_watch_request(gateway: Gateway):
    org, intent, campaign = new_id(), new_id(), "spring-sale"
    key = gateway.ops.key(org)
    query = f"?intent_id={intent}&campaign_id={campaign}&after_position=41"
    async with gateway.as_key(key, query) as socket:
        await eventually(lambda: _has_calls(gateway, 1))
        for response in (
            change(org, intent, SENT, 40),  # not after 41
            change(org, new_id(), SENT, 42),  # another intent
            change(org, intent, DELIVERED, 43),
        ):
            response.change.campaign_id = campaign
            await gateway.ops.service.publish(response)
        [frame] = await frames(socket, 1)

    assert frame["position"] == "43"
    request = gateway.ops.service.calls[0].request
    assert (request.intent_id, request.campaign_id, request.after_position) == (intent, campaign, "41")


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("?organization_id=x", "invalid argument: organization_id: not a parameter"),
        ("?after_position=1&after_position=2", "invalid argument: after_position: given more than once"),
    ],
    ids=["organization_id", "repeated"],
)
async def test_a_parameter_the_stream_does_not_take_is_closed_4400(gateway: Gateway, query: str, reason: str):
    async with gateway.as_key(gateway.ops.key(new_id()), query) as socket:
        code, said = await closed(socket)

    assert code == 4400 and said.startswith(reason)
    assert gateway.ops.service.calls == []


async def test_what_ops_refuses_as_invalid_is_closed_4400_with_its_fields(gateway: Gateway):
    async with gateway.as_key(gateway.ops.key(new_id()), "?after_position=abc&intent_id=nope") as socket:
        code, reason = await closed(socket)

    assert code == 4400
    assert reason.startswith("invalid argument: ") and len(reason.encode()) <= 123
    assert "after_position" in reason and "intent_id" in reason


# --- How ops ends a stream ------------------------------------------------------------------------------


async def _ends_with(status: grpc.StatusCode, after: int = 0) -> Callable[[WatchCall, Context], Any]:
    async def behaviour(call: WatchCall, context: Context) -> None:
        org = call.request.organization_id
        for position in range(1, after + 1):
            await call.write(context, change(org, new_id(), SENT, position * 10))
        await context.abort(status, "ops says so")

    return behaviour


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (grpc.StatusCode.OUT_OF_RANGE, 4410, "position too old: reconnect without after_position"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 4429, "too slow: resume with after_position=20"),
        (grpc.StatusCode.UNAVAILABLE, 1013, "unavailable: resume with after_position=20"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 1000, "ended: resume with after_position=20"),
        (grpc.StatusCode.INTERNAL, 1011, "internal: resume with after_position=20"),
        (grpc.StatusCode.UNKNOWN, 1011, "internal: resume with after_position=20"),
    ],
    ids=lambda value: getattr(value, "name", str(value)),
)
async def test_how_ops_ends_the_stream_is_the_close_code_after_the_frames_it_sent(
    gateway: Gateway, status: grpc.StatusCode, code: int, reason: str
):
    gateway.ops.service.behaviour = await _ends_with(status, after=2)
    async with gateway.as_key(gateway.ops.key(new_id())) as socket:
        positions = [frame["position"] for frame in await frames(socket, 2)]
        ended = await closed(socket)

    assert positions == ["10", "20"]
    assert ended[0] == code and ended[1].startswith(reason)


async def test_the_position_ops_starts_after_comes_first_so_a_cut_before_any_change_loses_nothing(
    gateway: Gateway,
):
    async def starts_after_41_then_goes_away(call: WatchCall, context: Context) -> None:
        await context.send_initial_metadata((("whatlead-position", "41"),))
        await context.abort(grpc.StatusCode.UNAVAILABLE, "ops is restarting")

    gateway.ops.service.behaviour = starts_after_41_then_goes_away
    async with gateway.as_key(gateway.ops.key(new_id())) as socket:
        first = await frames(socket, 1)
        ended = await closed(socket)

    assert first == [{"position": "41"}]
    assert ended == (1013, "unavailable: resume with after_position=41")


async def test_ops_out_of_reach_is_closed_1013_with_the_position_to_resume_from():
    async with served_fake_ops() as ops:
        key = ops.key(new_id())
    # Nothing listens there any more.
    async with running_gateway(ops=ops) as gateway, gateway.as_key(key, "?after_position=5") as socket:
        code, reason = await closed(socket)

    assert (code, reason) == (1013, "unavailable: resume with after_position=5")


# --- Back-pressure --------------------------------------------------------------------------------------

BIG = secrets.token_hex(4096)  # frames that fill the sockets' buffers within a few megabytes


async def _endless(call: WatchCall, context: Context) -> None:
    org, position = call.request.organization_id, 0
    while True:
        position += 1
        await call.write(context, change(org, new_id(), SENT, position, BIG))


async def test_a_watcher_that_stops_reading_is_cut_off_4429_naming_the_last_position_it_was_given():
    async with running_gateway(realtime_stall_seconds=0.5, realtime_queue_frames=4) as gateway:
        gateway.ops.service.behaviour = _endless
        cut_before = sample("whatlead_gateway_realtime_closes_total", code="4429")
        async with gateway.as_key(gateway.ops.key(new_id()), max_queue=1, compression=None) as socket:
            await eventually(lambda: _has_calls(gateway, 1))
            [call] = gateway.ops.service.calls
            # The watcher reads nothing: the gateway stops reading ops for it, and cuts it off.
            await asyncio.wait_for(call.ended.wait(), 30)
            received: list[str] = []
            try:
                while True:
                    received.append(json.loads(await asyncio.wait_for(socket.recv(), 10))["position"])
            except ConnectionClosed as close:
                assert close.rcvd is not None
                code, reason = close.rcvd.code, close.rcvd.reason

    assert call.cancelled  # ops' call for it ended: nothing is held for it any more
    assert (code, reason) == (4429, f"too slow: resume with after_position={received[-1]}")
    # Every frame it was given before the cut, in order, none twice: it resumes from the last.
    assert received == [str(position) for position in range(1, len(received) + 1)]
    # What ops wrote beyond what the watcher got: the relay's queue (4) and what gRPC's flow-control windows
    # hold (64 KiB: 8 frames), nothing that grows with the stall.
    assert call.written - len(received) <= 32, "the gateway read far ahead of what the socket took"
    assert sample("whatlead_gateway_realtime_closes_total", code="4429") == cut_before + 1


async def test_a_watcher_that_stops_reading_slows_no_other():
    async with running_gateway(realtime_stall_seconds=120) as gateway:
        slow_org, org = new_id(), new_id()

        async def behaviour(call: WatchCall, context: Context) -> None:
            if call.request.organization_id == slow_org:
                await _endless(call, context)
            else:
                await gateway.ops.service.stream_changes(call, context)

        gateway.ops.service.behaviour = behaviour
        async with gateway.as_key(gateway.ops.key(slow_org), max_queue=1, compression=None) as slow:
            await eventually(lambda: _has_calls(gateway, 1))
            [stalled] = gateway.ops.service.calls
            await eventually(_no_longer_written(stalled), every=0.5)  # its buffers are full
            async with gateway.as_key(gateway.ops.key(org)) as socket:
                await eventually(lambda: _has_calls(gateway, 2))
                for position in range(1, 1001):
                    await gateway.ops.service.publish(change(org, new_id(), SENT, position))
                received = [frame["position"] for frame in await frames(socket, 1000)]
            assert not stalled.ended.is_set()  # still stalled, still open, all the while
            await slow.close()  # the slow watcher leaves: its call ends
            await asyncio.wait_for(stalled.ended.wait(), 10)

    assert received == [str(position) for position in range(1, 1001)]
    assert stalled.cancelled


def _no_longer_written(call: WatchCall) -> Callable[[], Any]:
    seen = [-1]

    async def check() -> bool:
        unchanged = call.written == seen[0]
        seen[0] = call.written
        return unchanged

    return check


# --- Shutdown, origins, plain HTTP, metrics -------------------------------------------------------------


async def test_shutting_down_closes_each_socket_1001_with_its_resume_position():
    stop = asyncio.Event()
    async with running_gateway(stop=stop) as gateway:
        org = new_id()
        async with gateway.as_key(gateway.ops.key(org)) as socket:
            await eventually(lambda: _has_calls(gateway, 1))
            await gateway.ops.service.publish(change(org, new_id(), SENT, 12))
            await frames(socket, 1)
            stop.set()  # as SIGTERM does
            code, reason = await closed(socket)

    assert (code, reason) == (1001, "going away: resume with after_position=12")
    assert gateway.ops.service.calls[0].cancelled


async def test_only_the_allowed_origins_may_open_a_socket():
    async with running_gateway(realtime_allowed_origins=frozenset({"https://app.example.com"})) as gateway:
        key = gateway.ops.key(new_id())
        with pytest.raises(InvalidStatus) as refused:
            async with gateway.as_browser(key, origin="https://evil.example.net"):
                pass
        async with gateway.as_browser(key, origin="https://app.example.com") as socket:
            await eventually(lambda: _has_calls(gateway, 1))
            assert socket.subprotocol == "whatlead.v1"
        async with gateway.as_key(key) as socket:  # a program sends no Origin
            await eventually(lambda: _has_calls(gateway, 2))

    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body)["detail"].startswith("this page's origin")


async def test_a_plain_get_is_told_to_upgrade(gateway: Gateway):
    url = gateway.url.replace("ws://", "http://") + "/v1/realtime"
    assert await asyncio.to_thread(http_status, url) == 426


async def test_sockets_closes_and_frames_are_counted(gateway: Gateway):
    org = new_id()
    frames_before = sample("whatlead_gateway_realtime_frames_total")
    left_before = sample("whatlead_gateway_realtime_closes_total", code="client")
    async with gateway.as_key(gateway.ops.key(org, Role.ADMIN)) as socket:
        await eventually(lambda: _has_calls(gateway, 1))
        assert sample("whatlead_gateway_realtime_sockets") >= 1
        for position in (1, 2, 3):
            await gateway.ops.service.publish(change(org, new_id(), SENT, position))
        await frames(socket, 3)
    await asyncio.wait_for(gateway.ops.service.calls[0].ended.wait(), 10)

    assert sample("whatlead_gateway_realtime_frames_total") == frames_before + 3
    await eventually(lambda: _counted(left_before + 1))
    assert gateway.ops.service.calls[0].cancelled  # the watcher left: ops' call ended with it


async def _counted(expected: float) -> bool:
    return sample("whatlead_gateway_realtime_closes_total", code="client") == expected
