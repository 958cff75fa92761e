"""What the warm-up planner needs from outside: where a number's phase comes from, where plans are kept, and
the Gate it submits through."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from reputation_service.domain.instance import Instance
from reputation_service.domain.warmup import WarmupPhase
from reputation_service.domain.warmup_plan import MessageStatus, PlannedMessage, WarmupPlan, WarmupSchedule


class PhaseSource(Protocol):
    """A number's current warm-up phase. Stands in for the stored reputation state until the planner can
    read it (see `AgePhaseSource`)."""

    async def phase_of(self, instance: Instance, now: datetime) -> WarmupPhase: ...


class WarmupStore(Protocol):
    """Organizations' warm-up settings and the daily plans with each message's progress."""

    async def get_settings(self, organization_id: str) -> WarmupSchedule | None: ...

    async def put_settings(self, organization_id: str, schedule: WarmupSchedule, now: datetime) -> None: ...

    async def has_plan(self, instance_id: str, day: date) -> bool: ...

    async def get_plan(self, instance_id: str, day: date) -> WarmupPlan | None: ...

    async def add_plan(self, plan: WarmupPlan, now: datetime) -> bool:
        """Keeps the plan and its messages unless one is kept for that instance and day (then False)."""
        ...

    async def claim_due(self, now: datetime, *, limit: int, lease: timedelta) -> list[PlannedMessage]:
        """PLANNED messages due by `now`, oldest first, leased to this caller so another replica leaves
        them alone until the lease ends (a crash leaves them to the next pass)."""
        ...

    async def record(
        self,
        key: str,
        *,
        status: MessageStatus,
        now: datetime,
        intent_id: str = "",
        gate_instance_id: str = "",
        reason: str = "",
        retry_at: datetime | None = None,
    ) -> None:
        """The message's new status; PLANNED with `retry_at` puts it back for a later pass."""
        ...

    async def awaiting_outcome(
        self, now: datetime, *, older_than: timedelta, limit: int
    ) -> list[PlannedMessage]:
        """SUBMITTED messages not looked at for `older_than`, the longest-unchecked first."""
        ...


class GateOutcome(StrEnum):
    ACCEPTED = "ACCEPTED"  # approved or queued: on its way
    SENT = "SENT"
    FAILED = "FAILED"  # approved, then the send failed
    REFUSED = "REFUSED"  # blocked, dropped, or the call itself refused
    RETRY = "RETRY"  # the Gate could not be asked (down, deadline): ask again with the same key


@dataclass(frozen=True, kw_only=True)
class GateAnswer:
    outcome: GateOutcome
    intent_id: str = ""
    instance_id: str = ""  # the instance the Gate chose
    reason: str = ""  # a DecisionReason or gRPC status name: a small, fixed set


class WarmupGate(Protocol):
    """The Gate, as the planner uses it: every planned message is an intent the Gate decides."""

    async def submit(self, message: PlannedMessage) -> GateAnswer:
        """SubmitIntent with purpose WARMUP, the message's idempotency key, pinned to its sender."""
        ...

    async def outcome(self, message: PlannedMessage) -> GateAnswer:
        """What became of a submitted message's intent (ACCEPTED while it is still on its way)."""
        ...
