"""Decisions other than an approval, as the outbox publishes them: each carries its reason and record."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gate_service.domain.decision import DecisionOutcome, DecisionReason, DecisionRecord
from gate_service.domain.intent import MessageIntent
from gate_service.infrastructure.proto_mapping import event_to_proto
from libs.rpc.convert import to_timestamp
from libs.seedwork.clock import FakeClock
from tests.gate_service.unit.support import ORG, new_intent
from whatlead.events.v1 import gate_events_pb2
from whatlead.gate.v1 import gate_pb2

CLOCK = FakeClock()


def record(intent, outcome: DecisionOutcome, reason: DecisionReason, until=None) -> DecisionRecord:
    return DecisionRecord(
        intent_id=intent.id,
        outcome=outcome,
        reason=reason,
        decided_at=CLOCK.now(),
        attempt=intent.attempts + 1,
        queued_until=until,
    )


def published(intent: MessageIntent) -> Any:
    return event_to_proto(intent.pull_events()[-1])


def assert_decided(message: Any, intent: MessageIntent, reason: int, outcome: int) -> None:
    assert message.meta.organization_id == ORG and message.meta.aggregate_id == intent.id
    assert message.meta.correlation_id == intent.id
    assert message.intent_id == intent.id and message.reason == reason
    assert message.decision.intent_id == intent.id and message.decision.outcome == outcome


def test_a_queued_intent_publishes_until_when_and_why():
    intent = new_intent(CLOCK)
    until = CLOCK.now() + timedelta(minutes=5)
    intent.queue(
        record(intent, DecisionOutcome.QUEUED, DecisionReason.RATE_LIMIT, until),
        until,
        DecisionReason.RATE_LIMIT,
    )
    message = published(intent)
    assert isinstance(message, gate_events_pb2.IntentQueued)
    assert message.queued_until == to_timestamp(until)
    assert_decided(message, intent, gate_pb2.DECISION_REASON_RATE_LIMIT, gate_pb2.DECISION_OUTCOME_QUEUED)


def test_a_blocked_intent_publishes_why():
    intent = new_intent(CLOCK)
    intent.block(
        record(intent, DecisionOutcome.BLOCKED, DecisionReason.OPS_PAUSED), DecisionReason.OPS_PAUSED
    )
    message = published(intent)
    assert isinstance(message, gate_events_pb2.IntentBlocked)
    assert_decided(message, intent, gate_pb2.DECISION_REASON_OPS_PAUSED, gate_pb2.DECISION_OUTCOME_BLOCKED)


def test_a_dropped_intent_publishes_that_it_expired():
    intent = new_intent(CLOCK)
    intent.drop(record(intent, DecisionOutcome.DROPPED, DecisionReason.EXPIRED))
    message = published(intent)
    assert isinstance(message, gate_events_pb2.IntentDropped)
    assert_decided(message, intent, gate_pb2.DECISION_REASON_EXPIRED, gate_pb2.DECISION_OUTCOME_DROPPED)
