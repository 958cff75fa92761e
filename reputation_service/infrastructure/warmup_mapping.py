"""Warm-up plans and settings <-> protos."""

from __future__ import annotations

from datetime import date, time

from libs.rpc.convert import enum_to_proto, to_timestamp
from libs.seedwork.errors import InvalidArgument
from reputation_service.domain.warmup_plan import (
    MessageStatus,
    PlannedMessage,
    WarmupPlan,
    WarmupSchedule,
    conversation_status,
)
from whatlead.reputation.v1 import reputation_pb2


def plan_to_proto(plan: WarmupPlan) -> reputation_pb2.WarmupPlan:
    by_conversation: dict[int, list[PlannedMessage]] = {}
    for message in plan.messages:
        by_conversation.setdefault(message.conversation, []).append(message)
    progress = plan.progress()
    return reputation_pb2.WarmupPlan(
        organization_id=plan.organization_id,
        instance_id=plan.instance_id,
        day=plan.day.isoformat(),
        day_number=plan.day_number,
        phase=enum_to_proto(reputation_pb2.WarmupPhase, plan.phase),
        window_start=to_timestamp(plan.window_start),
        window_end=to_timestamp(plan.window_end),
        time_zone=plan.time_zone,
        conversations=[_conversation(index, messages) for index, messages in sorted(by_conversation.items())],
        progress=reputation_pb2.WarmupProgress(
            total=len(plan.messages),
            planned=progress[MessageStatus.PLANNED],
            submitted=progress[MessageStatus.SUBMITTED],
            sent=progress[MessageStatus.SENT],
            failed=progress[MessageStatus.FAILED],
            skipped=progress[MessageStatus.SKIPPED],
        ),
        planned=plan.created_at is not None,
        note=plan.note,
        created_at=to_timestamp(plan.created_at),
    )


def _conversation(index: int, messages: list[PlannedMessage]) -> reputation_pb2.WarmupConversation:
    opener = min(messages, key=lambda m: m.due_at)
    return reputation_pb2.WarmupConversation(
        index=index,
        at=to_timestamp(opener.due_at),
        partner_phone=opener.partner.phone,
        partner_instance_id=opener.partner.instance_id,
        friendly=opener.partner.friendly,
        status=enum_to_proto(reputation_pb2.WarmupMessageStatus, conversation_status(messages)),
        messages=[_message(m) for m in sorted(messages, key=lambda m: m.due_at)],
    )


def _message(message: PlannedMessage) -> reputation_pb2.WarmupMessage:
    return reputation_pb2.WarmupMessage(
        idempotency_key=message.idempotency_key,
        role=enum_to_proto(reputation_pb2.WarmupMessageRole, message.role),
        due_at=to_timestamp(message.due_at),
        sender_instance_id=message.sender_instance_id,
        target_phone=message.target_phone,
        text=message.text,
        status=enum_to_proto(reputation_pb2.WarmupMessageStatus, message.status),
        intent_id=message.intent_id,
        gate_instance_id=message.gate_instance_id,
        reason=message.reason,
        submitted_at=to_timestamp(message.submitted_at),
    )


def settings_to_proto(schedule: WarmupSchedule) -> reputation_pb2.WarmupSettings:
    return reputation_pb2.WarmupSettings(
        sending_hours_start=schedule.start.strftime("%H:%M"),
        sending_hours_end=schedule.end.strftime("%H:%M"),
        time_zone=schedule.time_zone,
        friendly_numbers=list(schedule.friendly_numbers),
    )


def settings_from_proto(settings: reputation_pb2.WarmupSettings) -> WarmupSchedule:
    """Checked by the domain (time zone known, start before end, E.164 phones)."""
    return WarmupSchedule.of(
        start=_hhmm(settings.sending_hours_start, "settings.sending_hours_start"),
        end=_hhmm(settings.sending_hours_end, "settings.sending_hours_end"),
        time_zone=settings.time_zone,
        friendly_numbers=list(settings.friendly_numbers),
    )


def day_from_proto(text: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument.of("day", "must be a date, YYYY-MM-DD") from None


def _hhmm(text: str, field: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise InvalidArgument.of(field, "must be a time of day, HH:MM") from None
