"""Server-streaming RPCs pass the same guard as unary ones: authenticated, authorized by their access
option, held to the caller's organization, validated, their errors mapped, and counted. A stream may write
pre-serialized bytes (one encoding per event however many watchers). Loopback only, no other server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from libs.rpc.auth import Authenticator
from libs.rpc.client import open_channel
from libs.rpc.keys import KeyTable
from libs.rpc.principal import current_principal
from libs.rpc.server import GrpcServer, ServicerBinding
from libs.seedwork.access import Role
from libs.seedwork.errors import FailedPrecondition
from libs.testing.services import install_key
from libs.testing.waiting import eventually
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

TOKEN = "t" * 40
ORG = "org-a"
INTENT = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def change(position: int) -> ops_pb2.WatchIntentsResponse:
    return ops_pb2.WatchIntentsResponse(
        change=ops_pb2.IntentChange(
            organization_id=ORG, intent_id=INTENT, kind=ops_pb2.INTENT_CHANGE_KIND_SENT
        ),
        position=str(position),
    )


class WatchingOps:
    """OpsService with WatchIntents only: writes two changes (the second already encoded), then ends as
    `ending` says."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (organization asked for, caller's organization)
        self.ending: Exception | None = None

    async def watch_intents(self, request: ops_pb2.WatchIntentsRequest, context: Any) -> None:
        self.seen.append((request.organization_id, current_principal().organization_id))
        await context.write(change(1))
        await context.write(change(2).SerializeToString())
        if self.ending is not None:
            raise self.ending


def add_watching_ops(servicer: WatchingOps, server: grpc.aio.Server) -> None:
    handler = grpc.unary_stream_rpc_method_handler(
        servicer.watch_intents,
        request_deserializer=ops_pb2.WatchIntentsRequest.FromString,
        response_serializer=ops_pb2.WatchIntentsResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("whatlead.ops.v1.OpsService", {"WatchIntents": handler}),)
    )


@pytest.fixture
async def served() -> AsyncIterator[tuple[WatchingOps, KeyTable, Callable[[str | None], Any]]]:
    servicer = WatchingOps()
    keys = KeyTable()
    binding = ServicerBinding(servicer, add_watching_ops, "whatlead.ops.v1.OpsService")
    server = GrpcServer([binding], host="127.0.0.1", port=0, authenticator=Authenticator(keys, TOKEN))
    port = await server.start()
    channels: list[grpc.aio.Channel] = []

    def stub(credential: str | None) -> ops_pb2_grpc.OpsServiceAsyncStub:
        channel = open_channel(f"127.0.0.1:{port}", credential=credential)
        channels.append(channel)
        return ops_pb2_grpc.OpsServiceStub(channel)

    try:
        yield servicer, keys, stub
    finally:
        for channel in channels:
            await channel.close()
        await server.stop(0)


async def read_all(call: Any) -> tuple[list[str], grpc.StatusCode, str]:
    positions: list[str] = []
    try:
        async for response in call:
            positions.append(response.position)
    except grpc.aio.AioRpcError as error:
        return positions, error.code(), error.details() or ""
    return positions, grpc.StatusCode.OK, ""


async def counted_once_more(code: grpc.StatusCode, before: float) -> None:
    """The server counts a stream as it ends, which may be just after its client heard the status."""

    async def counted() -> bool:
        return handled(code) == before + 1

    await eventually(counted, timeout=5)


def handled(code: grpc.StatusCode) -> float:
    labels = {
        "grpc_type": "server_stream",
        "grpc_service": "whatlead.ops.v1.OpsService",
        "grpc_method": "WatchIntents",
        "grpc_code": code.name,
    }
    return REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0


async def test_a_member_key_streams_its_own_organization_filled_in_and_bytes_arrive_as_messages(served):
    servicer, keys, stub = served
    before = handled(grpc.StatusCode.OK)
    secret = install_key(keys, ORG, Role.MEMBER)
    positions, code, _ = await read_all(stub(secret).WatchIntents(ops_pb2.WatchIntentsRequest()))
    assert (positions, code) == (["1", "2"], grpc.StatusCode.OK)
    assert servicer.seen == [(ORG, ORG)]
    await counted_once_more(grpc.StatusCode.OK, before)


@pytest.mark.parametrize(
    ("caller", "organization", "expected"),
    [
        (None, ORG, grpc.StatusCode.UNAUTHENTICATED),
        ("not-a-key", ORG, grpc.StatusCode.UNAUTHENTICATED),
        ("own", "org-b", grpc.StatusCode.PERMISSION_DENIED),
        ("service", ORG, grpc.StatusCode.PERMISSION_DENIED),  # WatchIntents is for organizations' keys
    ],
    ids=["no-key", "unknown-key", "foreign-organization", "service-credential"],
)
async def test_a_stream_refuses_before_its_handler_runs(served, caller, organization, expected):
    servicer, keys, stub = served
    credential = {"own": install_key(keys, ORG, Role.OWNER), "service": TOKEN}.get(caller, caller)
    before = handled(expected)
    positions, code, _ = await read_all(
        stub(credential).WatchIntents(ops_pb2.WatchIntentsRequest(organization_id=organization))
    )
    assert (positions, code) == ([], expected)
    assert servicer.seen == []
    await counted_once_more(expected, before)


async def test_a_request_that_breaks_its_contract_is_invalid_argument_naming_the_field(served):
    servicer, keys, stub = served
    secret = install_key(keys, ORG)
    positions, code, details = await read_all(
        stub(secret).WatchIntents(ops_pb2.WatchIntentsRequest(after_position="not-a-position"))
    )
    assert (positions, code) == ([], grpc.StatusCode.INVALID_ARGUMENT)
    assert "after_position" in details and servicer.seen == []


async def test_an_error_after_some_writes_ends_the_stream_with_its_mapped_status(served):
    servicer, keys, stub = served
    secret = install_key(keys, ORG)
    servicer.ending = FailedPrecondition("the position is gone")
    positions, code, details = await read_all(stub(secret).WatchIntents(ops_pb2.WatchIntentsRequest()))
    assert (positions, code, details) == (
        ["1", "2"],
        grpc.StatusCode.FAILED_PRECONDITION,
        "the position is gone",
    )


async def test_an_unexpected_error_is_internal_and_says_nothing_of_itself(served):
    servicer, keys, stub = served
    secret = install_key(keys, ORG)
    servicer.ending = RuntimeError("secret detail")
    before = handled(grpc.StatusCode.INTERNAL)
    positions, code, details = await read_all(stub(secret).WatchIntents(ops_pb2.WatchIntentsRequest()))
    assert (positions, code, details) == (["1", "2"], grpc.StatusCode.INTERNAL, "internal error")
    await counted_once_more(grpc.StatusCode.INTERNAL, before)
