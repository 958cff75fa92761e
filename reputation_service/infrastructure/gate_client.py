"""The Gate over gRPC, as the warm-up planner uses it: SubmitIntent with purpose WARMUP, the planned
message's idempotency key and its sender as `instance_id` (the Gate's pin: that number sends it or nobody
does), GetIntent to learn what became of it. Every call carries a deadline."""

from __future__ import annotations

import grpc

from reputation_service.application.warmup_ports import GateAnswer, GateOutcome
from reputation_service.domain.warmup_plan import PlannedMessage
from whatlead.common.v1 import common_pb2
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc

# Worth asking again with the same key: the Gate was away, slow, or busy. Anything else is its answer.
_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)
_ACCEPTED = frozenset(
    {gate_pb2.INTENT_STATUS_PENDING, gate_pb2.INTENT_STATUS_APPROVED, gate_pb2.INTENT_STATUS_QUEUED}
)
_REFUSED = frozenset({gate_pb2.INTENT_STATUS_BLOCKED, gate_pb2.INTENT_STATUS_DROPPED})


class GrpcWarmupGate:
    def __init__(self, channel: grpc.aio.Channel, *, deadline_seconds: float = 5.0) -> None:
        self._stub = gate_pb2_grpc.GateServiceStub(channel)
        self._deadline = deadline_seconds

    async def submit(self, message: PlannedMessage) -> GateAnswer:
        request = gate_pb2.SubmitIntentRequest(
            organization_id=message.organization_id,
            idempotency_key=message.idempotency_key,
            target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value=message.target_phone),
            type=common_pb2.MESSAGE_TYPE_TEXT,
            purpose=common_pb2.PURPOSE_WARMUP,
            origin=gate_pb2.INTENT_ORIGIN_WARMUP,
            payload=common_pb2.MessagePayload(text=common_pb2.TextPayload(text=message.text)),
            # The pairing is the point of warm-up: another number sending it would warm the wrong one.
            instance_id=message.sender_instance_id,
        )
        try:
            response = await self._stub.SubmitIntent(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as error:
            return _error_answer(error)
        return _answer(response.intent)

    async def outcome(self, message: PlannedMessage) -> GateAnswer:
        request = gate_pb2.GetIntentRequest(
            organization_id=message.organization_id, intent_id=message.intent_id
        )
        try:
            response = await self._stub.GetIntent(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return GateAnswer(
                    outcome=GateOutcome.REFUSED, intent_id=message.intent_id, reason="NOT_FOUND"
                )
            return _error_answer(error)
        return _answer(response.intent)


def _answer(intent: gate_pb2.MessageIntent) -> GateAnswer:
    reason = ""
    if intent.status_reason:
        reason = gate_pb2.DecisionReason.Name(intent.status_reason).removeprefix("DECISION_REASON_")
    if intent.status in _ACCEPTED:
        outcome = GateOutcome.ACCEPTED
    elif intent.status == gate_pb2.INTENT_STATUS_SENT:
        outcome = GateOutcome.SENT
    elif intent.status in _REFUSED:
        outcome = GateOutcome.REFUSED
    else:
        outcome = GateOutcome.FAILED
        reason = reason or "SEND_FAILED"
    return GateAnswer(
        outcome=outcome, intent_id=intent.id, instance_id=intent.decided_by_instance_id, reason=reason
    )


def _error_answer(error: grpc.aio.AioRpcError) -> GateAnswer:
    code = error.code()
    outcome = GateOutcome.RETRY if code in _TRANSIENT else GateOutcome.REFUSED
    return GateAnswer(outcome=outcome, reason=code.name)
