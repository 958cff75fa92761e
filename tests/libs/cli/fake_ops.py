"""A tiny in-process OpsService for the CLI's tests: it records every call (request and metadata) and
answers what the test set, or refuses with the status the test set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message

from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc


@dataclass
class Call:
    method: str
    request: Any
    metadata: dict[str, str]


@dataclass
class FakeOpsService:
    calls: list[Call] = field(default_factory=list)
    answers: dict[str, list[Message]] = field(default_factory=dict)  # per method, one per call in turn
    refusal: tuple[grpc.StatusCode, str] | None = None

    def answer(self, method: str, *responses: Message) -> None:
        self.answers.setdefault(method, []).extend(responses)

    def requests(self, method: str) -> list[Any]:
        return [call.request for call in self.calls if call.method == method]


def _handler(fake: FakeOpsService, method: str, response_type: type[Message]) -> Any:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        metadata = {key: str(value) for key, value in context.invocation_metadata() or ()}
        fake.calls.append(Call(method, request, metadata))
        if fake.refusal is not None:
            await context.abort(*fake.refusal)
        queued = fake.answers.get(method)
        return queued.pop(0) if queued else response_type()

    return handle


@asynccontextmanager
async def running_fake_ops() -> AsyncIterator[tuple[FakeOpsService, str]]:
    """The fake on a free port of 127.0.0.1: (the fake, its address)."""
    fake = FakeOpsService()
    service = ops_pb2.DESCRIPTOR.services_by_name["OpsService"]
    # Every RPC of the contract, each recording its call: a servicer class built from the descriptor.
    methods = {
        method.name: staticmethod(_handler(fake, method.name, getattr(ops_pb2, method.output_type.name)))
        for method in service.methods
    }
    servicer = type("RecordingOpsServicer", (ops_pb2_grpc.OpsServiceServicer,), methods)()
    server = grpc.aio.server()
    ops_pb2_grpc.add_OpsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield fake, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
