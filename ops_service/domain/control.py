"""The kill-switch as ops owns it: one control per scope (an instance, a campaign, a whole organization),
paused or active, numbered so every projection keeps the newest (libs.seedwork.controls is how the Gate and
the Executor see it).

              pause (reason, note, until?)              pause again (new reason, note or end)
    ACTIVE ─────────────────────────────────▶ PAUSED ◀────────┐
      ▲  (no control = ACTIVE, version 0)       │  └──────────┘
      └─────────────────────────────────────────┘
         resume (operator)  ·  expire (paused_until passed: reason EXPIRED, no actor)

Every arrow is a new version and one `ExecutionControlChanged` carrying the status before it; resuming an
ACTIVE scope is no arrow at all (no version, no event)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from libs.seedwork.aggregate import AggregateRoot
from libs.seedwork.errors import InvalidArgument, Violations
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import ControlScope
from ops_service.domain.events import ExecutionControlChanged


class ControlStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"


class ControlReason(StrEnum):
    MANUAL = "MANUAL"
    INCIDENT = "INCIDENT"
    PROVIDER_OUTAGE = "PROVIDER_OUTAGE"
    COMPLIANCE = "COMPLIANCE"
    EXPIRED = "EXPIRED"  # only ops itself, when a timed pause reaches its end


@dataclass(frozen=True, kw_only=True)
class Scope:
    organization_id: str
    scope: ControlScope
    scope_id: str

    @classmethod
    def of(cls, organization_id: str, scope: ControlScope | None, scope_id: str) -> Scope:
        """ORGANIZATION's scope id is the organization's own ("" stands for it); the others need one."""
        violations = Violations()
        violations.check(bool(organization_id.strip()), "organization_id", "must not be empty")
        if scope is None:
            violations.add("scope", "must be INSTANCE, ORGANIZATION or CAMPAIGN")
        elif scope is ControlScope.ORGANIZATION:
            violations.check(
                scope_id in ("", organization_id), "scope_id", "must be empty or the organization id"
            )
            scope_id = organization_id
        else:
            violations.check(bool(scope_id.strip()), "scope_id", f"must name the {scope.value.lower()}")
        violations.raise_if_any()
        assert scope is not None
        return cls(organization_id=organization_id, scope=scope, scope_id=scope_id)

    @property
    def target(self) -> str:
        return f"{self.scope.value.lower()}/{self.scope_id}"


def operator_reason(reason: ControlReason | None) -> ControlReason:
    """What an operator gave (MANUAL when nothing); EXPIRED is ops' own word for a timed pause ending."""
    if reason is ControlReason.EXPIRED:
        raise InvalidArgument.of("reason", "EXPIRED is set only when a timed pause ends by itself")
    return reason or ControlReason.MANUAL


@dataclass(kw_only=True, eq=False)
class ExecutionControl(AggregateRoot):
    id: str
    organization_id: str
    scope: ControlScope
    scope_id: str
    status: ControlStatus
    reason: ControlReason
    note: str
    actor: str
    paused_until: datetime | None
    updated_at: datetime
    version: int  # 0: never changed (not stored); +1 on every change

    @classmethod
    def active(cls, scope: Scope, now: datetime) -> ExecutionControl:
        """A scope nobody paused yet: what "no control" means."""
        return cls(
            id=new_id(),
            organization_id=scope.organization_id,
            scope=scope.scope,
            scope_id=scope.scope_id,
            status=ControlStatus.ACTIVE,
            reason=ControlReason.MANUAL,
            note="",
            actor="",
            paused_until=None,
            updated_at=now,
            version=0,
        )

    @property
    def paused(self) -> bool:
        return self.status is ControlStatus.PAUSED

    def pause(
        self,
        *,
        reason: ControlReason,
        note: str,
        paused_until: datetime | None,
        actor: str,
        caused_by: str,
        now: datetime,
    ) -> None:
        """Pausing a paused scope again is a change too (a new reason, note or end). `actor` is shown on the
        control (the operator's name beside the credential); `caused_by` is the credential alone, for the
        event's meta."""
        if paused_until is not None and paused_until <= now:
            raise InvalidArgument.of("paused_until", "must be in the future")
        self._change(ControlStatus.PAUSED, reason, note, paused_until, actor, caused_by, now)

    def resume(self, *, reason: ControlReason, note: str, actor: str, caused_by: str, now: datetime) -> bool:
        """False, and nothing changes, when the scope is active already."""
        if not self.paused:
            return False
        self._change(ControlStatus.ACTIVE, reason, note, None, actor, caused_by, now)
        return True

    def expired(self, now: datetime) -> bool:
        return self.paused and self.paused_until is not None and self.paused_until <= now

    def expire(self, now: datetime) -> bool:
        """A timed pause that reached its end resumes, by ops itself (no actor)."""
        if not self.expired(now):
            return False
        self._change(ControlStatus.ACTIVE, ControlReason.EXPIRED, "", None, "", "", now)
        return True

    def _change(
        self,
        status: ControlStatus,
        reason: ControlReason,
        note: str,
        paused_until: datetime | None,
        actor: str,
        caused_by: str,
        now: datetime,
    ) -> None:
        previous = self.status
        self.status, self.reason, self.note, self.paused_until = status, reason, note, paused_until
        self.actor, self.updated_at, self.version = actor, now, self.version + 1
        self.record(
            ExecutionControlChanged(
                event_id=new_id(),
                organization_id=self.organization_id,
                aggregate_id=self.scope_id,
                occurred_at=now,
                actor=caused_by,
                control=dataclasses.replace(self, pending_events=[]),
                previous_status=previous,
            )
        )
