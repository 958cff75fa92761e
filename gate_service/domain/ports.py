"""Storage ports of the Gate: intents, the projections' durable copy, and the units of work over them."""

from __future__ import annotations

import builtins  # IntentRepository has a method named list
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gate_service.domain.intent import IntentStatus, MessageIntent
from gate_service.domain.projection import InstanceState, Plan
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.shared_kernel import Purpose
from libs.seedwork.unit_of_work import InboxUnitOfWork, UnitOfWork


@dataclass(frozen=True, kw_only=True)
class IntentFilter:
    status: IntentStatus | None = None
    purpose: Purpose | None = None
    instance_id: str | None = None
    target: str | None = None
    campaign_id: str | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


class IntentRepository(Protocol):
    def add(self, intent: MessageIntent) -> None:
        """Insert at commit. A clash on (organization, idempotency key) fails the commit (AlreadyExists)."""
        ...

    async def get(self, organization_id: str, intent_id: str) -> MessageIntent | None:
        """The intent, only if it belongs to this organization; changes to it are saved at commit."""
        ...

    async def get_many(self, keys: Sequence[tuple[str, str]]) -> builtins.list[MessageIntent]:
        """The intents of these (organization, intent id) pairs that exist, in one read (an id under another
        organization is not returned), in no particular order; changes to them are saved at commit."""
        ...

    async def find_by_key(self, organization_id: str, idempotency_key: str) -> MessageIntent | None: ...

    async def list(
        self, organization_id: str, *, after_id: str | None, limit: int, where: IntentFilter
    ) -> builtins.list[MessageIntent]:
        """Newest last (id order), strictly after `after_id`."""
        ...

    async def claim_due(self, now: datetime, limit: int) -> builtins.list[MessageIntent]:
        """QUEUED intents whose queued_until has come, locked for this transaction (other replicas skip
        them); changes are saved at commit."""
        ...

    async def claim_awaiting_instance(self, organization_id: str, limit: int) -> builtins.list[MessageIntent]:
        """The organization's intents QUEUED for want of any instance (NO_ELIGIBLE_INSTANCE, within the
        projection grace), whatever their queued_until, locked like `claim_due`."""
        ...


class ProjectionStore(Protocol):
    """The projections' durable copy, so a restart does not need the other services to be up."""

    async def load_instance(self, instance_id: str) -> InstanceState | None: ...

    async def save_instance(self, state: InstanceState, changed_at: datetime) -> None: ...

    async def save_control(self, control: ExecutionControl, changed_at: datetime) -> None:
        """Unless the stored control of its scope is as new (`ExecutionControl.supersedes`)."""
        ...

    async def save_plan(self, plan: Plan, changed_at: datetime) -> None: ...


class GateUnitOfWork(UnitOfWork, Protocol):
    """One transaction over intents: what every intent use case needs. Implemented per call (a session)
    and batched (a group commit, the hot path) alike."""

    @property
    def intents(self) -> IntentRepository: ...

    async def commit(self) -> None:
        """Write every change and event at once; AlreadyExists when an added intent's idempotency key is
        taken, FailedPrecondition when a loaded intent was changed concurrently."""
        ...


class ConsumerUnitOfWork(GateUnitOfWork, InboxUnitOfWork, Protocol):
    """The transaction of an event consumer: intents, the projections' durable copy and the inbox."""

    @property
    def projections(self) -> ProjectionStore: ...
