from __future__ import annotations

import copy
from datetime import datetime

from gate_service.domain.intent import IntentStatus, MessageIntent
from gate_service.domain.ports import IntentFilter
from gate_service.domain.projection import Control, InstanceState, Plan
from libs.seedwork.errors import AlreadyExists
from libs.testing.fakes import FakeUnitOfWork


class FakeIntentRepository:
    def __init__(self) -> None:
        self.rows: dict[str, MessageIntent] = {}
        self._new: list[MessageIntent] = []

    def add(self, intent: MessageIntent) -> None:
        self._new.append(intent)

    def flush(self) -> None:
        for intent in self._new:
            if intent.idempotency_key and any(
                (i.organization_id, i.idempotency_key) == (intent.organization_id, intent.idempotency_key)
                for i in self.rows.values()
            ):
                self._new = []
                raise AlreadyExists("unique (organization, idempotency key)")
            self.rows[intent.id] = intent
        self._new = []

    async def get(self, organization_id: str, intent_id: str) -> MessageIntent | None:
        found = self.rows.get(intent_id)
        return found if found is not None and found.organization_id == organization_id else None

    async def find_by_key(self, organization_id: str, key: str) -> MessageIntent | None:
        return next(
            (
                i
                for i in self.rows.values()
                if (i.organization_id, i.idempotency_key) == (organization_id, key)
            ),
            None,
        )

    async def list(
        self, organization_id: str, *, after_id, limit: int, where: IntentFilter
    ) -> list[MessageIntent]:
        chosen = sorted(
            (
                i
                for i in self.rows.values()
                if i.organization_id == organization_id
                and (after_id is None or i.id > after_id)
                and (where.status is None or i.status is where.status)
                and (where.purpose is None or i.purpose is where.purpose)
                and (where.instance_id is None or i.decided_by_instance_id == where.instance_id)
                and (where.target is None or i.target.value == where.target)
                and (where.campaign_id is None or i.campaign_id == where.campaign_id)
                and (where.created_after is None or i.created_at >= where.created_after)
                and (where.created_before is None or i.created_at < where.created_before)
            ),
            key=lambda i: i.id,
        )
        return chosen[:limit]

    async def claim_due(self, now: datetime, limit: int) -> list[MessageIntent]:
        due = [
            i
            for i in self.rows.values()
            if i.status is IntentStatus.QUEUED and i.queued_until and i.queued_until <= now
        ]
        return sorted(due, key=lambda i: i.queued_until)[:limit]  # type: ignore[arg-type, return-value]


class FakeProjectionStore:
    def __init__(self) -> None:
        self.instances: dict[str, InstanceState] = {}
        self.controls: dict[tuple, Control] = {}
        self.plans: dict[str, Plan] = {}

    async def load_instance(self, instance_id: str) -> InstanceState | None:
        return self.instances.get(instance_id)

    async def save_instance(self, state: InstanceState, changed_at: datetime) -> None:
        self.instances[state.instance_id] = state

    async def save_control(self, control: Control, changed_at: datetime) -> None:
        self.controls[(control.organization_id, control.scope, control.scope_id)] = control

    async def save_plan(self, plan: Plan, changed_at: datetime) -> None:
        self.plans[plan.organization_id] = plan


class FakeGateUnitOfWork(FakeUnitOfWork):
    """Shared by every `uow()` call of a test, like one database."""

    def __init__(self) -> None:
        super().__init__()
        self.intents = FakeIntentRepository()
        self.projections = FakeProjectionStore()
        self._committed: dict[str, MessageIntent] = {}

    def _begin(self) -> None:
        self.intents.rows = copy.deepcopy(self._committed)

    def _keep(self) -> None:
        self._committed = copy.deepcopy(self.intents.rows)

    def _discard(self) -> None:
        self.intents.rows = copy.deepcopy(self._committed)
        self.intents._new = []

    async def commit(self) -> None:
        self.intents.flush()
        await super().commit()
