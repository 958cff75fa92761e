"""Who asked for an intent travels on its IntentCreated (meta.actor), also when concurrent submits share
one group commit: each intent keeps its own caller's actor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from libs.messaging.streams import delete_streams, ensure_streams
from libs.seedwork.access import Principal, Role
from libs.seedwork.ids import new_id
from libs.testing.principals import TestPrincipalInterceptor, as_metadata
from libs.testing.waiting import eventually
from tests.gate_service.integration.harness import RunningGate, gate_events, running_gate, text_request
from whatlead.gate.v1 import gate_pb2_grpc


@pytest.fixture
async def gate_root(subject_root, jetstream):
    root = f"{subject_root}_actor"
    await ensure_streams(jetstream, root)
    yield root
    await delete_streams(jetstream, root)


@pytest.fixture
async def gate(
    migrated_database, gate_root, redis_prefix, jetstream, redis_client
) -> AsyncIterator[RunningGate]:
    async with running_gate(migrated_database("gate_service"), gate_root, redis_prefix) as running:
        yield running


@pytest.fixture
async def authenticated_stub(gate: RunningGate) -> AsyncIterator[gate_pb2_grpc.GateServiceStub]:
    """The Gate's servicer behind a server that sets the caller, as the authentication interceptor does."""
    server = grpc.aio.server(interceptors=[TestPrincipalInterceptor()])
    for binding in gate.app.parts().bindings:
        binding.add_to(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield gate_pb2_grpc.GateServiceStub(channel)
    await server.stop(0)


async def test_each_intent_created_names_its_own_caller_even_when_committed_together(
    gate, authenticated_stub, jetstream, gate_root
):
    organization = f"org-{new_id()[-12:]}"
    callers = [Principal(organization, Role.MEMBER, new_id()) for _ in range(8)] + [Principal.service()]
    # Submitted at once, so the group commit writes several of them in one transaction.
    responses = await asyncio.gather(
        *(
            authenticated_stub.SubmitIntent(
                text_request(organization, f"55119{n:08d}", key=f"k-{n}"), metadata=as_metadata(caller)
            )
            for n, caller in enumerate(callers)
        )
    )
    expected = {r.intent.id: caller.actor for r, caller in zip(responses, callers, strict=True)}

    async def all_published() -> bool:
        return len(await gate_events(jetstream, gate_root, "gate.intent.created", set(expected))) == len(
            expected
        )

    await eventually(all_published, timeout=10)
    created = await gate_events(jetstream, gate_root, "gate.intent.created", set(expected))
    assert {event.meta.aggregate_id: event.meta.actor for event in created} == expected
    assert expected[responses[-1].intent.id] == "service"


async def test_an_intent_submitted_with_no_caller_set_has_the_systems_empty_actor(gate, jetstream, gate_root):
    response = await gate.stub.SubmitIntent(text_request(f"org-{new_id()[-12:]}", "5511900000001"))

    async def published() -> bool:
        return len(await gate_events(jetstream, gate_root, "gate.intent.created", {response.intent.id})) == 1

    await eventually(published, timeout=10)
    [event] = await gate_events(jetstream, gate_root, "gate.intent.created", {response.intent.id})
    assert event.meta.actor == ""
