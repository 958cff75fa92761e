"""What an operator reads of the Gate's decisions on /metrics, against the real stores through its gRPC
API: each committed decision counted once with its outcome and reason, the queue's size from the database,
and the standard gRPC series of its calls."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from libs.messaging.streams import delete_streams, ensure_streams
from libs.seedwork.clock import FakeClock
from libs.seedwork.ids import new_id
from libs.testing.waiting import eventually
from tests.gate_service.integration.harness import register_instances, running_gate, text_request
from whatlead.gate.v1 import gate_pb2


@pytest.fixture(scope="module")
async def gate_root(subject_root, jetstream):
    root = f"{subject_root}_gatemetrics"
    await ensure_streams(jetstream, root)
    yield root
    await delete_streams(jetstream, root)


@pytest.fixture(scope="module")
async def gate(migrated_database, gate_root, redis_prefix, jetstream, redis_client):
    # Time stands still: a queued intent stays queued (no grace ends, no scheduler pass approves it).
    clock = FakeClock(datetime.now(UTC))
    async with running_gate(
        migrated_database("gate_service"), gate_root, redis_prefix, clock=clock
    ) as running:
        yield running


def decisions(outcome: str, reason: str) -> float:
    labels = {"outcome": outcome, "reason": reason}
    return REGISTRY.get_sample_value("whatlead_gate_decisions_total", labels) or 0.0


def org() -> str:
    return f"org-{new_id()[-12:]}"


async def test_a_refused_decision_is_counted_with_its_reason_and_an_approval_with_none(
    gate, jetstream, gate_root
):
    queued_before = decisions("queued", "NO_ELIGIBLE_INSTANCE")
    approved_before = decisions("approved", "none")
    handled = {
        "grpc_type": "unary",
        "grpc_service": "whatlead.gate.v1.GateService",
        "grpc_method": "SubmitIntent",
        "grpc_code": "OK",
    }
    calls_before = REGISTRY.get_sample_value("grpc_server_handled_total", handled) or 0.0

    # No instance in this organization: queued, waiting for one.
    lonely = await gate.stub.SubmitIntent(text_request(org(), "5511900000001"))
    assert lonely.intent.status_reason == gate_pb2.DECISION_REASON_NO_ELIGIBLE_INSTANCE
    assert decisions("queued", "NO_ELIGIBLE_INSTANCE") == queued_before + 1

    served = org()
    await register_instances(jetstream, gate_root, gate, served, 1)
    approved = await gate.stub.SubmitIntent(text_request(served, "5511900000002", key="once"))
    assert approved.intent.status == gate_pb2.INTENT_STATUS_APPROVED
    assert decisions("approved", "none") == approved_before + 1
    # The same call again (its idempotency key): no new decision.
    await gate.stub.SubmitIntent(text_request(served, "5511900000002", key="once"))
    assert decisions("approved", "none") == approved_before + 1

    async def three_calls() -> bool:  # counted as each call ends, maybe just after its answer
        return REGISTRY.get_sample_value("grpc_server_handled_total", handled) == calls_before + 3

    await eventually(three_calls, timeout=5)


async def test_the_queue_gauge_counts_the_intents_waiting_queued_in_the_database(gate):
    [census] = gate.app.gauges
    await census.run_once()
    before = REGISTRY.get_sample_value("whatlead_gate_queued_intents")
    assert before is not None
    for n in range(3):
        await gate.stub.SubmitIntent(text_request(org(), f"55119000001{n:02d}"))
    await census.run_once()
    assert REGISTRY.get_sample_value("whatlead_gate_queued_intents") == before + 3
