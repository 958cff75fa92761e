"""Ports of the application layer that are not storage: the rate windows and the rebuild sources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from gate_service.domain.projection import Control, InstanceState, Plan
from gate_service.domain.rates import RateSnapshot, Reservation, ReservationResult


class RateStore(Protocol):
    """Per-instance, per-contact and per-organization send windows, plus the sticky sender of each target.
    Redis in production, in-process on the embedded default; both atomic per reservation."""

    async def snapshot(
        self, organization_id: str, target: str, instance_ids: list[str], now: datetime
    ) -> RateSnapshot:
        """Current usage of the given instances, of the target and of the organization's plan, and the
        target's sticky instance (with its usage, even when not among `instance_ids`)."""
        ...

    async def reserve(self, reservation: Reservation) -> ReservationResult:
        """Check every window and take the slot in one atomic step: two concurrent reservations can never
        both take the last slot. On success the target becomes sticky to the instance."""
        ...

    async def release(self, reservation: Reservation) -> None:
        """Give back a slot taken for a decision that was not committed (an idempotent submit that lost to
        a concurrent one). Counters only: the last-send times stay, which errs on the safe side."""
        ...


class InstanceStateSource(Protocol):
    """Where the instance projection is rebuilt from at start-up (ReputationService.ListInstanceStates)."""

    def instance_states(self) -> AsyncIterator[tuple[InstanceState, dict[str, object] | None]]:
        """Every instance, with its reputation fields (score, health, phase, cooldown_until, version)."""
        ...


class ControlSource(Protocol):
    """Where paused controls and plans are rebuilt from (OpsService.ListPausedControls / ListPlans)."""

    def paused_controls(self) -> AsyncIterator[Control]: ...

    def plans(self) -> AsyncIterator[Plan]: ...
