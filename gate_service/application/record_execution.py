"""What the Executor reports back: an approved intent was sent, or failed for good."""

from __future__ import annotations

import logging
from datetime import datetime

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
    intent = await uow.intents.get(organization_id, intent_id)
    if intent is None:
        log.warning("sent report for an unknown intent", extra={"intent_id": intent_id})
        return False
    try:
        changed = intent.mark_sent(
            instance_id=instance_id, job_id=job_id, provider_message_id=provider_message_id, sent_at=sent_at
        )
    except InvariantViolated:
        log.warning("sent report for an intent that is not approved", extra={"intent_id": intent_id})
        return False
    uow.track(intent)
    return changed


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
    intent = await uow.intents.get(organization_id, intent_id)
    if intent is None:
        log.warning("failure report for an unknown intent", extra={"intent_id": intent_id})
        return False
    try:
        changed = intent.mark_failed(
            instance_id=instance_id,
            job_id=job_id,
            error_class=error_class,
            error_code=error_code,
            error_message=error_message,
            failed_at=failed_at,
        )
    except InvariantViolated:
        log.warning("failure report for an intent that is not approved", extra={"intent_id": intent_id})
        return False
    uow.track(intent)
    return changed
