from __future__ import annotations

from datetime import datetime, timedelta

from executor_service.domain.job import MessageExecutionJob
from executor_service.domain.message import OutboundMessage
from executor_service.domain.outcome import ErrorClass, JobError, RestrictionKind
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import MessageType, Provider, TargetKind

ORG = "org-acme"
T0 = datetime.fromisoformat("2026-01-01T12:00:00+00:00")


def text_message(text: str = "hello", recipient: str = "5511987654321") -> OutboundMessage:
    return OutboundMessage(
        target_kind=TargetKind.PHONE, recipient=recipient, type=MessageType.TEXT, text=text
    )


def new_job(now: datetime = T0, **overrides: object) -> MessageExecutionJob:
    fields: dict[str, object] = dict(
        intent_id=new_id(),
        organization_id=ORG,
        instance_id=new_id(),
        provider=Provider.WAHA,
        provider_instance_ref="sales-1",
        campaign_id="",
        message=text_message(),
        client_message_id="3EB0AAAAAAAAAAAAAAAA",
        not_before=None,
        expires_at=None,
        now=now,
    )
    fields.update(overrides)
    return MessageExecutionJob.create(**fields)  # type: ignore[arg-type]


def error(kind: ErrorClass, code: str = "x", *, at: datetime = T0, **extra: object) -> JobError:
    if kind is ErrorClass.RESTRICTED and "restriction" not in extra:
        extra["restriction"] = RestrictionKind.REACHOUT_TIMELOCK
    return JobError(error_class=kind, code=code, occurred_at=at, **extra)  # type: ignore[arg-type]


LEASE = timedelta(seconds=30)
