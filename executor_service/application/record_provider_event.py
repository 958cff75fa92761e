"""What the provider reports after a send (via the gateway): delivery progress, and late evidence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from executor_service.domain.job import DeliveryStatus
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
