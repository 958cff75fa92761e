"""MessageIntent's invariants, one test each, plus input validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gate_service.domain.decision import DecisionOutcome, DecisionReason, DecisionRecord
from gate_service.domain.events import IntentApproved, IntentCreated, IntentFailed
from gate_service.domain.intent import (
    ApprovedInstance,
    AudioPayload,
    IntentStatus,
    MediaPayload,
    ReactionPayload,
    TextPayload,
)
from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import InvalidArgument, InvariantViolated
from libs.seedwork.shared_kernel import MessageType, Provider, TargetKind
from tests.gate_service.unit.support import PHONE, new_intent

CLOCK = FakeClock()
INSTANCE = ApprovedInstance(instance_id="i-1", provider=Provider.WAHA, provider_instance_ref="s1")


def record(intent, outcome: DecisionOutcome, reason=None, until=None, at=None) -> DecisionRecord:
    return DecisionRecord(
        intent_id=intent.id,
        outcome=outcome,
        reason=reason,
        decided_at=at or CLOCK.now(),
        attempt=intent.attempts + 1,
        queued_until=until,
    )


def approved():
    intent = new_intent(CLOCK)
    intent.approve(record(intent, DecisionOutcome.APPROVED), INSTANCE)
    return intent


def test_an_intent_is_born_pending_with_a_normalized_target_and_announced():
    intent = new_intent(CLOCK)
    assert intent.status is IntentStatus.PENDING
    assert intent.target.value == PHONE
    assert intent.expires_at == CLOCK.now() + timedelta(hours=4)  # default validity
    [created] = intent.pull_events()
    assert isinstance(created, IntentCreated) and created.intent.status is IntentStatus.PENDING


def test_approved_only_with_an_instance():
    intent = new_intent(CLOCK)
    with pytest.raises(InvariantViolated):
        intent.approve(
            record(intent, DecisionOutcome.APPROVED),
            ApprovedInstance(instance_id="", provider=Provider.WAHA, provider_instance_ref="x"),
        )
    intent.approve(record(intent, DecisionOutcome.APPROVED), INSTANCE)
    assert intent.status is IntentStatus.APPROVED and intent.decided_by_instance_id == "i-1"
    assert isinstance(intent.pull_events()[-1], IntentApproved)


def test_queued_only_with_queued_until():
    intent = new_intent(CLOCK)
    with pytest.raises(InvariantViolated):
        intent.queue(record(intent, DecisionOutcome.QUEUED), None, DecisionReason.RATE_LIMIT)
    until = CLOCK.now() + timedelta(minutes=1)
    intent.queue(record(intent, DecisionOutcome.QUEUED, until=until), until, DecisionReason.RATE_LIMIT)
    assert intent.status is IntentStatus.QUEUED and intent.queued_until == until


def test_queued_never_beyond_its_validity():
    intent = new_intent(CLOCK)
    with pytest.raises(InvariantViolated):
        intent.queue(record(intent, DecisionOutcome.QUEUED), intent.expires_at, DecisionReason.RATE_LIMIT)


def test_blocked_only_with_a_semantic_reason():
    intent = new_intent(CLOCK)
    with pytest.raises(InvariantViolated):
        intent.block(record(intent, DecisionOutcome.BLOCKED), None)
    with pytest.raises(InvariantViolated):
        intent.block(record(intent, DecisionOutcome.BLOCKED), "paused")  # type: ignore[arg-type]
    intent.block(record(intent, DecisionOutcome.BLOCKED), DecisionReason.OPS_PAUSED)
    assert intent.status is IntentStatus.BLOCKED and intent.status_reason is DecisionReason.OPS_PAUSED


def test_an_expired_intent_is_never_approved_only_dropped():
    intent = new_intent(CLOCK, expires_at=CLOCK.now() + timedelta(minutes=5))
    later = CLOCK.now() + timedelta(minutes=5)
    with pytest.raises(InvariantViolated):
        intent.approve(record(intent, DecisionOutcome.APPROVED, at=later), INSTANCE)
    intent.drop(record(intent, DecisionOutcome.DROPPED, at=later))
    assert intent.status is IntentStatus.DROPPED and intent.status_reason is DecisionReason.EXPIRED


def test_sent_and_failed_only_from_approved():
    intent = new_intent(CLOCK)
    with pytest.raises(InvariantViolated):
        intent.mark_sent(instance_id="i-1", job_id="j", provider_message_id="m", sent_at=CLOCK.now())
    with pytest.raises(InvariantViolated):
        intent.mark_failed(
            instance_id="i-1",
            job_id="j",
            error_class="PERMANENT",
            error_code="x",
            error_message="",
            failed_at=CLOCK.now(),
        )
    sent = approved()
    assert sent.mark_sent(instance_id="i-1", job_id="j", provider_message_id="m", sent_at=CLOCK.now())
    assert sent.status is IntentStatus.SENT
    assert not sent.mark_sent(instance_id="i-1", job_id="j", provider_message_id="m", sent_at=CLOCK.now())
    failed = approved()
    assert failed.mark_failed(
        instance_id="i-1",
        job_id="j",
        error_class="PERMANENT",
        error_code="x",
        error_message="",
        failed_at=CLOCK.now(),
    )
    assert failed.status is IntentStatus.FAILED


def sent_then(intent, **failure):
    """The job's late failure report (a 463 reported after the provider accepted the message)."""
    report = {
        "instance_id": "i-1",
        "job_id": "j",
        "error_class": "RESTRICTED",
        "error_code": "463",
        "error_message": "",
        "failed_at": CLOCK.now(),
    }
    return intent.mark_failed(**(report | failure))


def test_a_sent_intent_fails_when_its_job_reports_a_late_failure():
    intent = approved()
    intent.mark_sent(instance_id="i-1", job_id="j", provider_message_id="m", sent_at=CLOCK.now())
    intent.pull_events()
    version = intent.version

    assert sent_then(intent)
    assert intent.status is IntentStatus.FAILED and intent.version == version + 1
    [failed] = intent.pull_events()
    assert isinstance(failed, IntentFailed) and (failed.job_id, failed.error_code) == ("j", "463")

    assert not sent_then(intent)  # a repeat changes nothing
    assert intent.pull_events() == [] and intent.version == version + 1


def test_a_sent_report_after_the_failure_never_brings_the_intent_back():
    """Reports may arrive out of order: the failure first, then the sent report of the same job."""
    intent = approved()
    assert sent_then(intent)
    intent.pull_events()

    assert not intent.mark_sent(instance_id="i-1", job_id="j", provider_message_id="m", sent_at=CLOCK.now())
    assert intent.status is IntentStatus.FAILED and intent.pull_events() == []


def test_a_sent_intent_fails_only_by_a_report_from_the_instance_that_sent_it():
    intent = approved()
    intent.mark_sent(instance_id="i-1", job_id="j", provider_message_id="m", sent_at=CLOCK.now())
    with pytest.raises(InvariantViolated):
        sent_then(intent, instance_id="i-2")
    assert intent.status is IntentStatus.SENT


@pytest.mark.parametrize("terminal", ["BLOCKED", "DROPPED", "SENT", "FAILED"])
def test_finished_states_are_never_decided_again(terminal):
    intent = approved() if terminal in ("SENT", "FAILED") else new_intent(CLOCK)
    match terminal:
        case "BLOCKED":
            intent.block(record(intent, DecisionOutcome.BLOCKED), DecisionReason.PLAN_LIMIT)
        case "DROPPED":
            intent.drop(record(intent, DecisionOutcome.DROPPED))
        case "SENT":
            intent.mark_sent(instance_id="i-1", job_id="j", provider_message_id="m", sent_at=CLOCK.now())
        case "FAILED":
            intent.mark_failed(
                instance_id="i-1",
                job_id="j",
                error_class="P",
                error_code="x",
                error_message="",
                failed_at=CLOCK.now(),
            )
    until = CLOCK.now() + timedelta(minutes=1)
    for attempt in (
        lambda: intent.approve(record(intent, DecisionOutcome.APPROVED), INSTANCE),
        lambda: intent.queue(
            record(intent, DecisionOutcome.QUEUED, until=until), until, DecisionReason.RATE_LIMIT
        ),
        lambda: intent.block(record(intent, DecisionOutcome.BLOCKED), DecisionReason.RATE_LIMIT),
        lambda: intent.drop(record(intent, DecisionOutcome.DROPPED)),
    ):
        with pytest.raises(InvariantViolated):
            attempt()
    if terminal in ("BLOCKED", "DROPPED"):
        with pytest.raises(InvariantViolated):
            intent.mark_sent(instance_id="i", job_id="j", provider_message_id="m", sent_at=CLOCK.now())
    assert intent.status is IntentStatus(terminal)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"organization_id": " "}, "organization_id"),
        ({"payload": TextPayload("   ")}, "payload.text.text"),
        ({"type": None}, "type"),
        ({"payload": AudioPayload("https://x/a.ogg")}, "payload"),
        ({"target_value": "12345"}, "target.value"),
        ({"target_kind": TargetKind.GROUP, "target_value": "5511987654321"}, "target.value"),
        ({"target_kind": None}, "target.kind"),
        ({"expires_at": CLOCK.now() - timedelta(seconds=1)}, "expires_at"),
        ({"expires_at": CLOCK.now() + timedelta(days=30)}, "expires_at"),
        (
            {"type": MessageType.MEDIA, "payload": MediaPayload("ftp://x", "image/png")},
            "payload.media.media_url",
        ),
        (
            {"type": MessageType.MEDIA, "payload": MediaPayload("https://x/a.png", "png")},
            "payload.media.mime_type",
        ),
        (
            {"type": MessageType.REACTION, "payload": ReactionPayload("👍", "")},
            "payload.reaction.message_ref",
        ),
        ({"purpose": None}, "purpose"),
        ({"not_before": CLOCK.now() + timedelta(hours=72, seconds=1)}, "not_before"),
        ({"not_before": datetime.max.replace(tzinfo=UTC)}, "not_before"),
    ],
)
def test_bad_input_is_rejected_field_by_field(overrides, field):
    with pytest.raises(InvalidArgument) as error:
        new_intent(CLOCK, **overrides)
    assert field in {v.field for v in error.value.violations}


def test_every_problem_is_reported_at_once():
    with pytest.raises(InvalidArgument) as error:
        new_intent(CLOCK, organization_id="", target_value="x", payload=TextPayload(""))
    assert {v.field for v in error.value.violations} == {
        "organization_id",
        "target.value",
        "payload.text.text",
    }
