"""What the Executor reports back: an approved intent was sent, or failed for good."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from gate_service.domain.intent import MessageIntent
from gate_service.domain.ports import GateUnitOfWork
from libs.seedwork.errors import InvariantViolated

log = logging.getLogger(__name__)


async def record_message_sent(
    uow: GateUnitOfWork,
    *,
    organization_id: str,
    intent_id: str,
    instance_id: str,
    job_id: str,
    provider_message_id: str,
    sent_at: datetime,
) -> bool:
    """APPROVED -> SENT (IntentSent). A repeat or an unknown intent changes nothing (False)."""
    return await _record(
        uow,
        organization_id,
        intent_id,
        "sent report",
        lambda intent: intent.mark_sent(
            instance_id=instance_id, job_id=job_id, provider_message_id=provider_message_id, sent_at=sent_at
        ),
    )


async def record_message_failed(
    uow: GateUnitOfWork,
    *,
    organization_id: str,
    intent_id: str,
    instance_id: str,
    job_id: str,
    error_class: str,
    error_code: str,
    error_message: str,
    failed_at: datetime,
) -> bool:
    """APPROVED -> FAILED (IntentFailed). A repeat or an unknown intent changes nothing (False)."""
    return await _record(
        uow,
        organization_id,
        intent_id,
        "failure report",
        lambda intent: intent.mark_failed(
            instance_id=instance_id,
            job_id=job_id,
            error_class=error_class,
            error_code=error_code,
            error_message=error_message,
            failed_at=failed_at,
        ),
    )


async def _record(
    uow: GateUnitOfWork,
    organization_id: str,
    intent_id: str,
    report: str,
    mark: Callable[[MessageIntent], bool],
) -> bool:
    """A report the intent cannot take (unknown, or not approved) is logged and dropped, not retried:
    redelivering it would never make it fit."""
    intent = await uow.intents.get(organization_id, intent_id)
    if intent is None:
        log.warning("%s for an unknown intent", report, extra={"intent_id": intent_id})
        return False
    try:
        changed = mark(intent)
    except InvariantViolated:
        log.warning("%s for an intent that is not approved", report, extra={"intent_id": intent_id})
        return False
    uow.track(intent)
    return changed
