"""Who asked for an intent travels on its IntentCreated (meta.actor), also when concurrent submits share
one group commit: each intent keeps its own caller's actor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from libs.messaging.streams import delete_streams, ensure_streams
from libs.seedwork.access import Role
from libs.seedwork.ids import new_id
from libs.testing.services import install_key
from libs.testing.waiting import eventually
from tests.gate_service.integration.harness import RunningGate, gate_events, running_gate, text_request


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


async def test_each_intent_created_names_its_own_caller_even_when_committed_together(
    gate, jetstream, gate_root
):
    organization = f"org-{new_id()[-12:]}"
    assert gate.app.parts().authenticator is not None
    keys = gate.app.parts().authenticator.keys
    key_ids = [new_id() for _ in range(8)]
    credentials = [install_key(keys, organization, Role.MEMBER, api_key_id=key_id) for key_id in key_ids]
    credentials.append(gate.settings.service_credential() or "")
    actors = [f"key:{key_id}" for key_id in key_ids] + ["service"]
    # Submitted at once, so the group commit writes several of them in one transaction.
    responses = await asyncio.gather(
        *(
            gate.stub.SubmitIntent(
                text_request(organization, f"55119{n:08d}", key=f"k-{n}"),
                metadata=(("authorization", f"Bearer {credential}"),),
            )
            for n, credential in enumerate(credentials)
        )
    )
    expected = {r.intent.id: actor for r, actor in zip(responses, actors, strict=True)}

    async def all_published() -> bool:
        return len(await gate_events(jetstream, gate_root, "gate.intent.created", set(expected))) == len(
            expected
        )

    await eventually(all_published, timeout=10)
    created = await gate_events(jetstream, gate_root, "gate.intent.created", set(expected))
    assert {event.meta.aggregate_id: event.meta.actor for event in created} == expected
