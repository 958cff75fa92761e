"""What the Gate needs from the outside world: intent storage, the unit of work, projection storage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gate_service.domain.intent import IntentStatus, MessageIntent
from gate_service.domain.projection import Control, InstanceState, Plan
from libs.seedwork.shared_kernel import Purpose
from libs.seedwork.unit_of_work import UnitOfWork


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

    async def find_by_key(self, organization_id: str, idempotency_key: str) -> MessageIntent | None: ...

    async def list(
        self, organization_id: str, *, after_id: str | None, limit: int, where: IntentFilter
    ) -> list[MessageIntent]:
        """Newest last (id order), strictly after `after_id`."""
        ...

    async def claim_due(self, now: datetime, limit: int) -> list[MessageIntent]:
        """QUEUED intents whose queued_until has come, locked for this transaction (other replicas skip
        them); changes are saved at commit."""
        ...


class ProjectionStore(Protocol):
    """The projections' durable copy, so a restart does not need the other services to be up."""

    async def load_instance(self, instance_id: str) -> InstanceState | None: ...

    async def save_instance(self, state: InstanceState, changed_at: datetime) -> None: ...

    async def save_control(self, control: Control, changed_at: datetime) -> None: ...

    async def save_plan(self, plan: Plan, changed_at: datetime) -> None: ...


class GateUnitOfWork(UnitOfWork, Protocol):
    intents: IntentRepository
    projections: ProjectionStore
