"""What happened to an intent, as the Gate tells the other services (outbox -> JetStream)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from gate_service.domain.decision import DecisionReason, DecisionRecord
from libs.seedwork.aggregate import DomainEvent

if TYPE_CHECKING:  # the aggregate records these events: a runtime import would be circular
    from gate_service.domain.intent import ApprovedInstance, MessageIntent


@dataclass(frozen=True, kw_only=True)
class IntentCreated(DomainEvent):
    intent: MessageIntent


@dataclass(frozen=True, kw_only=True)
class IntentApproved(DomainEvent):
    intent: MessageIntent
    instance: ApprovedInstance
    decision: DecisionRecord


@dataclass(frozen=True, kw_only=True)
class IntentQueued(DomainEvent):
    queued_until: datetime
    reason: DecisionReason
    decision: DecisionRecord


@dataclass(frozen=True, kw_only=True)
class IntentBlocked(DomainEvent):
    reason: DecisionReason
    decision: DecisionRecord


@dataclass(frozen=True, kw_only=True)
class IntentDropped(DomainEvent):
    reason: DecisionReason
    decision: DecisionRecord


@dataclass(frozen=True, kw_only=True)
class IntentSent(DomainEvent):
    instance_id: str
    job_id: str
    provider_message_id: str
    sent_at: datetime


@dataclass(frozen=True, kw_only=True)
class IntentFailed(DomainEvent):
    instance_id: str
    job_id: str
    error_class: str
    error_code: str
    error_message: str
    failed_at: datetime
