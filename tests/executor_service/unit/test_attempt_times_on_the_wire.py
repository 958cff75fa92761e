"""What the Executor publishes about an attempt says when that attempt was claimed (the timeline shows it),
and says nothing when no attempt ran."""

from __future__ import annotations

from datetime import timedelta

from executor_service.domain.message import OutboundMessage
from executor_service.domain.outcome import ErrorClass
from executor_service.domain.retry_policy import RetryPolicy
from executor_service.infrastructure.proto_mapping import event_to_proto
from libs.rpc.convert import from_timestamp
from libs.seedwork.shared_kernel import MessageType, TargetKind
from tests.executor_service.unit.builders import LEASE, T0, error, new_job

POLICY = RetryPolicy(max_attempts=3, base_delay=timedelta(seconds=2), factor=2.0, jitter=0.0)


def test_a_retry_and_a_send_carry_the_claim_of_their_attempt():
    job = new_job()
    job.claim(now=T0, lease=LEASE, token="claim-1")
    job.record_failure(error(ErrorClass.TRANSIENT, "http_503"), policy=POLICY, now=T0 + timedelta(seconds=1))
    second = T0 + timedelta(seconds=5)
    job.claim(now=second, lease=LEASE, token="claim-2")
    job.mark_sent(provider_message_id="true_x_3EB0", now=second + timedelta(seconds=1))
    retry, sent = (event_to_proto(event) for event in job.pull_events())
    assert from_timestamp(retry.attempt_started_at) == T0  # type: ignore[attr-defined]
    assert from_timestamp(sent.attempt_started_at) == second  # type: ignore[attr-defined]


def test_a_failure_before_any_attempt_carries_no_attempt_time():
    bad = OutboundMessage(target_kind=TargetKind.PHONE, recipient="12", type=MessageType.TEXT, text="")
    [failed] = [event_to_proto(event) for event in new_job(message=bad).pull_events()]
    assert not failed.HasField("attempt_started_at")
