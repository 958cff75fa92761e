"""Read your own writes: an intent submitted right after its instance was registered is approved through
it, although the Gate hears of the instance (an event) only some 100-200 ms later."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial

import pytest

from libs.seedwork.ids import new_id
from libs.testing.jetstream import publish, simulator_instance_registered
from libs.testing.waiting import eventually
from tests.gate_service.integration.harness import ALL_PURPOSES, RunningGate, running_gate, text_request
from whatlead.gate.v1 import gate_pb2

TRIALS = 10


@pytest.fixture
async def gate(
    migrated_database: Callable[[str], str], subject_root: str, redis_prefix: str, jetstream: object
) -> AsyncIterator[RunningGate]:
    # A grace far longer than the test waits: an approval can only come from the arrival of the instance.
    async with running_gate(
        migrated_database("gate_service"), subject_root, redis_prefix, projection_grace_seconds=30
    ) as running:
        yield running


async def test_a_submit_right_after_register_is_approved_through_the_new_instance(
    gate: RunningGate, jetstream: object, subject_root: str
) -> None:
    waited = 0
    for trial in range(TRIALS):
        organization_id, instance_id = f"org-ryw-{new_id()[-10:]}", new_id()
        await publish(  # what RegisterInstance leaves on JetStream when it returns
            jetstream,
            subject_root,
            simulator_instance_registered(
                organization_id, instance_id, provider_instance_ref=f"sim-{trial}", purposes=ALL_PURPOSES
            ),
        )
        submitted = await gate.stub.SubmitIntent(text_request(organization_id, f"551190000{trial:04d}"))
        assert submitted.intent.status in (gate_pb2.INTENT_STATUS_APPROVED, gate_pb2.INTENT_STATUS_QUEUED)
        waited += submitted.intent.status == gate_pb2.INTENT_STATUS_QUEUED
        request = gate_pb2.GetIntentRequest(organization_id=organization_id, intent_id=submitted.intent.id)
        await eventually(partial(_approved_through, gate, request, instance_id), timeout=10)
    print(f"{waited} of {TRIALS} submits waited for their instance")  # shown with -s


async def _approved_through(gate: RunningGate, request: gate_pb2.GetIntentRequest, instance_id: str) -> bool:
    intent = (await gate.stub.GetIntent(request)).intent
    return intent.status == gate_pb2.INTENT_STATUS_APPROVED and intent.decided_by_instance_id == instance_id
