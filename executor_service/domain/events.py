"""Facts the executor publishes (through the outbox). correlation_id is always the intent id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from executor_service.domain.outcome import JobError
from libs.seedwork.aggregate import DomainEvent
from libs.seedwork.shared_kernel import Provider


@dataclass(frozen=True, kw_only=True)
class JobEvent(DomainEvent):
    job_id: str
    intent_id: str
    instance_id: str
    provider: Provider


@dataclass(frozen=True, kw_only=True)
class MessageSent(JobEvent):
    provider_message_id: str
    attempts: int
    sent_at: datetime
    campaign_id: str
    attempt_started_at: datetime | None = None  # the claim of the attempt that ended here


@dataclass(frozen=True, kw_only=True)
class MessageFailed(JobEvent):
    """Final: not tried again unless an operator retries. A RESTRICTED error tells Reputation to cool
    the instance down."""

    error: JobError
    attempts: int
    failed_at: datetime
    campaign_id: str
    attempt_started_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class MessageRetryScheduled(JobEvent):
    attempt: int
    next_attempt_at: datetime
    error: JobError | None
    # `actor` (DomainEvent's, also meta.actor): "" for an automatic retry; who asked, for an operator's
    # retry.
    attempt_started_at: datetime | None = None  # None for an operator's retry (no attempt ran)


@dataclass(frozen=True, kw_only=True)
class MessageNeedsReview(JobEvent):
    attempts: int
    error: JobError
    attempt_started_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class MessageDeliveryStatusChanged(JobEvent):
    provider_message_id: str
    status: str  # DeliveryStatus value: DELIVERED or READ
    status_at: datetime


@dataclass(frozen=True, kw_only=True)
class ProviderHealthReported(DomainEvent):
    """A health probe found an instance's provider-side state changed since the last report. Published as
    the gateway's ProviderEventReceived (origin PROBE), so every consumer applies it like a webhook."""

    instance_id: str
    provider: Provider
    provider_instance_ref: str
    change: str  # instance.HealthChange value: which fact changed
    connection_state: str  # ConnectionState value, "" unknown
    connection_reason: str
    timelock_until: datetime | None
    capping: str  # instance.CappingLevel value, "" unknown
    quota_used: int | None
    quota_total: int | None
