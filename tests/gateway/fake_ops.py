"""A hand-written OpsService for the gateway's /v1/realtime tests: only WatchIntents, served by grpc.aio
behind the real server wrapper (libs.rpc.server: authentication from a key table, the access option,
organization scope, request validation, error mapping), so the gateway meets ops' contract, not a copy.

Each call is recorded (its request as ops sees it, organization filled in from the key; the credential it
presented; how it ended) and then does what the test scripted: by default it streams the changes the test
put in `changes` for its organization and filters, then waits for more."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc

from libs.rpc.auth import Authenticator, bearer
from libs.rpc.keys import KeyTable
from libs.rpc.server import GrpcServer, ServicerBinding
from libs.seedwork.access import Role
from libs.testing.services import install_key
from whatlead.ops.v1 import ops_pb2

Context = grpc.aio.ServicerContext[ops_pb2.WatchIntentsRequest, ops_pb2.WatchIntentsResponse]
Behaviour = Callable[["WatchCall", Context], Awaitable[None]]


@dataclass
class WatchCall:
    request: ops_pb2.WatchIntentsRequest
    credential: str | None
    written: int = 0
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False  # the gateway ended the call (its watcher left or was cut off)

    async def write(self, context: Context, response: ops_pb2.WatchIntentsResponse) -> None:
        try:
            await context.write(response)
        except Exception as gone:  # grpc's "execute_batch" failure: the client cancelled the call
            raise asyncio.CancelledError from gone
        self.written += 1


def change(
    organization_id: str, intent_id: str, kind: int, position: int, summary: str = ""
) -> ops_pb2.WatchIntentsResponse:
    return ops_pb2.WatchIntentsResponse(
        change=ops_pb2.IntentChange(
            organization_id=organization_id,
            intent_id=intent_id,
            kind=ops_pb2.IntentChangeKind.ValueType(kind),
            summary=summary or f"change {position}",
        ),
        position=str(position),
    )


SERVICE = "whatlead.ops.v1.OpsService"


class FakeOpsService:
    def __init__(self) -> None:
        self.calls: list[WatchCall] = []
        self.changes: list[ops_pb2.WatchIntentsResponse] = []
        self.behaviour: Behaviour = self.stream_changes
        self._new_change = asyncio.Condition()

    async def publish(self, response: ops_pb2.WatchIntentsResponse) -> None:
        async with self._new_change:
            self.changes.append(response)
            self._new_change.notify_all()

    async def watch_intents(self, request: ops_pb2.WatchIntentsRequest, context: Context) -> None:
        call = WatchCall(request, bearer(context.invocation_metadata()))
        self.calls.append(call)
        try:
            await self.behaviour(call, context)
        except asyncio.CancelledError:
            call.cancelled = True  # ended by its client: awaiting a write, or waiting for the next change
            raise
        finally:
            call.ended.set()

    def _more_than(self, seen: int) -> bool:
        return len(self.changes) > seen

    async def stream_changes(self, call: WatchCall, context: Context) -> None:
        """The organization's changes after the call's position that match its filters, then each new one."""
        request = call.request
        after = int(request.after_position or "0")
        seen = 0
        while True:
            async with self._new_change:
                await self._new_change.wait_for(functools.partial(self._more_than, seen))
                pending, seen = self.changes[seen:], len(self.changes)
            for response in pending:
                changed = response.change
                if (
                    changed.organization_id == request.organization_id
                    and int(response.position) > after
                    and request.intent_id in ("", changed.intent_id)
                    and request.campaign_id in ("", changed.campaign_id)
                ):
                    await call.write(context, response)


def add_watch_intents(servicer: FakeOpsService, server: grpc.aio.Server) -> None:
    """OpsService with WatchIntents alone (every other method: UNIMPLEMENTED)."""
    handler = grpc.unary_stream_rpc_method_handler(
        servicer.watch_intents,
        request_deserializer=ops_pb2.WatchIntentsRequest.FromString,
        response_serializer=ops_pb2.WatchIntentsResponse.SerializeToString,
    )
    generic = grpc.method_handlers_generic_handler(SERVICE, {"WatchIntents": handler})
    server.add_generic_rpc_handlers((generic,))


@dataclass
class ServedOps:
    address: str
    service: FakeOpsService
    keys: KeyTable
    service_credential: str

    def key(self, organization_id: str, role: Role = Role.MEMBER) -> str:
        return install_key(self.keys, organization_id, role)


@asynccontextmanager
async def served_fake_ops() -> AsyncIterator[ServedOps]:
    keys = KeyTable()
    service_credential = "fake-ops-service-credential-0123456789abcdef"
    fake = FakeOpsService()
    server = GrpcServer(
        [ServicerBinding(fake, add_watch_intents, SERVICE)],
        host="127.0.0.1",
        port=0,
        authenticator=Authenticator(keys, service_credential),
    )
    port = await server.start()
    try:
        yield ServedOps(f"127.0.0.1:{port}", fake, keys, service_credential)
    finally:
        await server.stop(0)
