"""Tiny in-process gRPC services for the CLI's tests: every RPC of a contract records its call (request and
metadata) and answers what the test set, or refuses with the status the test set. A server-streaming RPC
plays one script per call: the responses, then an ending status (or it stays open until the client
leaves)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.message import Message

from libs.rpc.stream_start import START_POSITION_KEY
from whatlead.executor.v1 import executor_pb2, executor_pb2_grpc
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc


@dataclass
class Call:
    method: str
    request: Any
    metadata: dict[str, str]
    time_remaining: float | None = None  # seconds left of the call's deadline when it arrived (None: none)


@dataclass
class Script:
    """What one call of a server-streaming RPC sends: its initial metadata (`start_position`), `responses`,
    then `end` (None: OK), or with `stay_open` nothing more until the client leaves."""

    responses: Sequence[Message]
    end: tuple[grpc.StatusCode, str] | None = None
    stay_open: bool = False
    start_position: str = ""  # sent as `whatlead-position` in the initial metadata ("": none)


@dataclass
class FakeService:
    calls: list[Call] = field(default_factory=list)
    answers: dict[str, list[Message]] = field(default_factory=dict)  # per method, one per call in turn
    scripts: dict[str, list[Script]] = field(default_factory=dict)  # per streaming method, one per call
    refusal: tuple[grpc.StatusCode, str] | None = None
    refusal_trailers: tuple[tuple[str, str | bytes], ...] = ()  # e.g. the error's details (google.rpc)
    opened: asyncio.Event = field(default_factory=asyncio.Event)  # a client opened a stream
    left: asyncio.Event = field(default_factory=asyncio.Event)  # a client left an open stream

    def answer(self, method: str, *responses: Message) -> None:
        self.answers.setdefault(method, []).extend(responses)

    def stream(self, method: str, *scripts: Script) -> None:
        self.scripts.setdefault(method, []).extend(scripts)

    def requests(self, method: str) -> list[Any]:
        return [call.request for call in self.calls if call.method == method]


def _record(
    fake: FakeService, method: str, request: Any, context: grpc.aio.ServicerContext[Any, Any]
) -> None:
    metadata = {key: str(value) for key, value in context.invocation_metadata() or ()}
    fake.calls.append(Call(method, request, metadata, context.time_remaining()))


def _unary(fake: FakeService, method: str, response_type: type[Message]) -> Any:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        _record(fake, method, request, context)
        if fake.refusal is not None:
            await context.abort(*fake.refusal, trailing_metadata=fake.refusal_trailers)
        queued = fake.answers.get(method)
        return queued.pop(0) if queued else response_type()

    return handle


def _server_streaming(fake: FakeService, method: str) -> Any:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Message]:
        _record(fake, method, request, context)
        fake.opened.set()
        if fake.refusal is not None:
            await context.abort(*fake.refusal)
        queued = fake.scripts.get(method)
        script = queued.pop(0) if queued else Script([])
        if script.start_position:
            await context.send_initial_metadata(((START_POSITION_KEY, script.start_position),))
        for response in script.responses:
            yield response
        if script.stay_open:
            try:
                await asyncio.Event().wait()
            finally:
                fake.left.set()
        if script.end is not None:
            await context.abort(*script.end)

    return handle


@asynccontextmanager
async def running_fake(
    messages: ModuleType, stubs: ModuleType, service_name: str
) -> AsyncIterator[tuple[FakeService, str]]:
    """A fake of `service_name` (from the `messages` and `stubs` modules generated for its proto) on a free
    port of 127.0.0.1: (the fake, its address)."""
    fake = FakeService()
    service = messages.DESCRIPTOR.services_by_name[service_name]
    # Every RPC of the contract, each recording its call: a servicer class built from the descriptor.
    methods = {
        method.name: staticmethod(
            _server_streaming(fake, method.name)
            if method.server_streaming
            else _unary(fake, method.name, getattr(messages, method.output_type.name))
        )
        for method in service.methods
    }
    base = getattr(stubs, f"{service_name}Servicer")
    servicer = type(f"Recording{service_name}", (base,), methods)()
    server = grpc.aio.server()
    getattr(stubs, f"add_{service_name}Servicer_to_server")(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield fake, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


def running_fake_ops() -> AbstractAsyncContextManager[tuple[FakeService, str]]:
    return running_fake(ops_pb2, ops_pb2_grpc, "OpsService")


def running_fake_gate() -> AbstractAsyncContextManager[tuple[FakeService, str]]:
    return running_fake(gate_pb2, gate_pb2_grpc, "GateService")


def running_fake_executor() -> AbstractAsyncContextManager[tuple[FakeService, str]]:
    return running_fake(executor_pb2, executor_pb2_grpc, "ExecutorService")


def running_fake_reputation() -> AbstractAsyncContextManager[tuple[FakeService, str]]:
    return running_fake(reputation_pb2, reputation_pb2_grpc, "ReputationService")
