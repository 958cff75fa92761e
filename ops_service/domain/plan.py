"""Plans: what an organization may send. A cap of 0 means unlimited; an organization without a plan has
the default one (everything unlimited)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from libs.seedwork.aggregate import AggregateRoot
from libs.seedwork.errors import Violations
from libs.seedwork.ids import new_id
from ops_service.domain.events import PlanChanged

DEFAULT_PLAN = "default"


@dataclass(frozen=True, kw_only=True)
class PlanLimits:
    daily_message_cap: int = 0
    monthly_message_cap: int = 0
    max_instances: int = 0

    def validate(self) -> None:
        violations = Violations()
        for name in ("daily_message_cap", "monthly_message_cap", "max_instances"):
            violations.check(getattr(self, name) >= 0, f"limits.{name}", "must be 0 (unlimited) or more")
        violations.raise_if_any()


@dataclass(kw_only=True, eq=False)
class Plan(AggregateRoot):
    id: str
    organization_id: str
    name: str
    limits: PlanLimits
    updated_at: datetime | None  # None: the default plan, never set
    version: int  # 0: the default plan; +1 on every change

    @classmethod
    def default(cls, organization_id: str) -> Plan:
        return cls(
            id=new_id(),
            organization_id=organization_id,
            name=DEFAULT_PLAN,
            limits=PlanLimits(),
            updated_at=None,
            version=0,
        )

    def set(self, *, name: str, limits: PlanLimits, caused_by: str, now: datetime) -> None:
        """A blank name keeps the current one. `caused_by`: the credential, for the event's meta."""
        limits.validate()
        self.name = name.strip() or self.name
        self.limits, self.updated_at, self.version = limits, now, self.version + 1
        self.record(
            PlanChanged(
                event_id=new_id(),
                organization_id=self.organization_id,
                aggregate_id=self.organization_id,
                occurred_at=now,
                actor=caused_by,
                plan=dataclasses.replace(self, pending_events=[]),
            )
        )
