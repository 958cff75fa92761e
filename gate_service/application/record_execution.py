"""What the Executor reports back: an approved intent was sent, or failed for good (also after it was
sent, when WhatsApp refused the message later)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gate_service.domain.intent import MessageIntent
from gate_service.domain.ports import GateUnitOfWork
from libs.seedwork.errors import InvariantViolated

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class MessageSentReport:
    """APPROVED -> SENT (IntentSent)."""

    organization_id: str
    intent_id: str
    instance_id: str
    job_id: str
    provider_message_id: str
    sent_at: datetime

    name = "sent report"

    def apply_to(self, intent: MessageIntent) -> bool:
        return intent.mark_sent(
            instance_id=self.instance_id,
            job_id=self.job_id,
            provider_message_id=self.provider_message_id,
            sent_at=self.sent_at,
        )


@dataclass(frozen=True, kw_only=True)
class MessageFailedReport:
    """APPROVED or SENT -> FAILED (IntentFailed)."""

    organization_id: str
    intent_id: str
    instance_id: str
    job_id: str
    error_class: str
    error_code: str
    error_message: str
    failed_at: datetime

    name = "failure report"

    def apply_to(self, intent: MessageIntent) -> bool:
        return intent.mark_failed(
            instance_id=self.instance_id,
            job_id=self.job_id,
            error_class=self.error_class,
            error_code=self.error_code,
            error_message=self.error_message,
            failed_at=self.failed_at,
        )


ExecutionReport = MessageSentReport | MessageFailedReport


@dataclass(frozen=True)
class RecordExecutionReports:
    reports: Sequence[ExecutionReport]  # in the order the Executor published them


class RecordExecutionReportsHandler:
    """Applies the Executor's reports to their intents in the caller's transaction (it does not commit):
    the batch's intents are read at once, then each report goes to its intent in order, as if applied one
    by one. A repeat changes nothing, nor does a sent report after the failure; a report its intent
    cannot take (unknown, not approved, another instance's) is logged and dropped, not retried:
    redelivering it would never make it fit."""

    async def __call__(self, uow: GateUnitOfWork, command: RecordExecutionReports) -> list[bool]:
        """For each report, whether it changed its intent."""
        keys = list(dict.fromkeys((report.organization_id, report.intent_id) for report in command.reports))
        intents = {(i.organization_id, i.id): i for i in await uow.intents.get_many(keys)}
        changed: list[bool] = []
        for report in command.reports:
            intent = intents.get((report.organization_id, report.intent_id))
            changed.append(intent is not None and self._apply(report, intent))
            if intent is None:
                log.warning("%s for an unknown intent", report.name, extra={"intent_id": report.intent_id})
            elif changed[-1]:
                uow.track(intent)
        return changed

    @staticmethod
    def _apply(report: ExecutionReport, intent: MessageIntent) -> bool:
        try:
            return report.apply_to(intent)
        except InvariantViolated:
            log.warning(
                "%s that its intent cannot take",
                report.name,
                extra={"intent_id": report.intent_id, "status": intent.status.value},
            )
            return False
