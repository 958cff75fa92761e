"""What the provider reports after a send (via the gateway): delivery progress, late evidence that a send
left, and late news that it failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from executor_service.application.instances import apply_restriction, instance_for
from executor_service.domain.job import DeliveryStatus
from executor_service.domain.outcome import ErrorClass, JobError, RestrictionKind
from executor_service.domain.ports import ExecutorUnitOfWork
from libs.seedwork.clock import Clock


class ReportedStatus(StrEnum):
    SERVER_ACK = "SERVER_ACK"  # the provider's own "sent"
    DELIVERED = "DELIVERED"
    READ = "READ"


@dataclass(frozen=True, kw_only=True)
class RecordProviderReport:
    """The provider reported progress of a message the instance sent."""

    provider_message_id: str
    client_message_id: str | None  # our chosen id inside the provider's id, when it carries one
    status: ReportedStatus
    occurred_at: datetime


class RecordProviderReportHandler:
    """Correlates a provider message id to its job (and so its intent) and publishes DELIVERED/READ once
    each, forward only. A job under review whose message the provider reports was sent after all: it
    becomes SENT. Reports about messages that are not ours are ignored."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def __call__(self, uow: ExecutorUnitOfWork, report: RecordProviderReport) -> bool:
        """Inside the caller's transaction (the event consumer's); True when the job changed."""
        job = await uow.jobs.find_by_provider_message_id(report.provider_message_id)
        if job is None and report.client_message_id:
            job = await uow.jobs.find_by_client_message_id(report.client_message_id)
        if job is None:
            return False
        now = self._clock.now()
        changed = job.confirm_sent_by_evidence(provider_message_id=report.provider_message_id, now=now)
        if report.status is not ReportedStatus.SERVER_ACK:
            delivery = DeliveryStatus(report.status.value)
            changed = job.record_delivery(delivery, at=report.occurred_at, now=now) or changed
        if changed:
            uow.jobs.save(job)
            uow.track(job)
        return changed


@dataclass(frozen=True, kw_only=True)
class RecordSendFailure:
    """The provider reported, after answering the send, that one of our messages failed (an ERROR ack)."""

    provider_message_id: str
    client_message_id: str | None  # our chosen id inside the provider's id, when it carries one
    error_code: str  # WhatsApp's code when the provider reports one ("463")
    reachout_timelock: bool  # the gateway read a 463 (restriction_kind REACHOUT_TIMELOCK)
    occurred_at: datetime


# WhatsApp's reach-out time-lock. It can arrive after the send was accepted: Baileys turns a bad ack into
# `messages.update` with status ERROR and the code in `messageStubParameters` (WhiskeySockets/Baileys
# src/Socket/messages-recv.ts, handleBadAck, @a7e39c18), which Evolution forwards; WAHA reports it as
# `message.ack` with ack -1 (devlikeapro/waha src/structures/enums.dto.ts, WAMessageAck.ERROR, @c0a4b223).
TIMELOCK_CODE = "463"


class RecordSendFailureHandler:
    """A job whose message the provider reports failed after it answered the send (SENT on its 201, or
    still PROCESSING / under review) becomes FAILED for good and publishes MessageFailed. A 463 fails it
    RESTRICTED (REACHOUT_TIMELOCK), so Reputation cools the number down, and time-locks the instance in the
    projection, so its other jobs are held; any other code fails it PERMANENT. Never retried by itself;
    a repeat, or a late DELIVERED/READ, changes nothing."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def __call__(self, uow: ExecutorUnitOfWork, report: RecordSendFailure) -> bool:
        job = await uow.jobs.find_by_provider_message_id(report.provider_message_id)
        if job is None and report.client_message_id:
            job = await uow.jobs.find_by_client_message_id(report.client_message_id)
        if job is None:
            return False
        now = self._clock.now()
        if report.reachout_timelock or report.error_code == TIMELOCK_CODE:
            error = JobError(
                error_class=ErrorClass.RESTRICTED,
                code="reachout_timelock",
                message="the provider reported WhatsApp error 463 after accepting the send",
                restriction=RestrictionKind.REACHOUT_TIMELOCK,
                occurred_at=report.occurred_at,
            )
        else:
            code = f" (code {report.error_code[:16]})" if report.error_code else ""
            error = JobError(
                error_class=ErrorClass.PERMANENT,
                code="failed_after_send",
                message=f"the provider reported the message failed after accepting it{code}",
                occurred_at=report.occurred_at,
            )
        if not job.fail_after_send(error, now=now):
            return False
        uow.jobs.save(job)
        uow.track(job)
        if error.restriction is not None:
            instance = await instance_for(
                uow,
                instance_id=job.instance_id,
                organization_id=job.organization_id,
                provider=job.provider,
                ref=job.provider_instance_ref,
            )
            if apply_restriction(instance, error):
                uow.instances.save(instance)
        return True
