"""Ports of the application layer that are not storage: the rate windows and what they are rebuilt from,
the projections' rebuild sources, what this process remembers of recent idempotency keys, and the news that
an instance arrived."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from gate_service.domain.projection import InstanceState, Plan, Reputation
from gate_service.domain.rates import RateSnapshot, Reservation, ReservationResult, SentWindows
from libs.seedwork.controls import ExecutionControl


class RateStore(Protocol):
    """Per-instance, per-contact and per-organization send windows, plus the sticky sender of each target,
    shared by every Gate replica (Redis); atomic per reservation."""

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


class SentHistory(Protocol):
    """The Gate's own record of what it approved (its intents), which the rate windows are rebuilt from
    when their store comes back empty: caps must not depend on Redis never losing data."""

    async def current_windows(self) -> SentWindows:
        """Per instance, contact and organization, the approved (and later: sent, failed) intents counted
        in the windows current now, by their decision time, with the last of them."""
        ...


class InstanceStateSource(Protocol):
    """Where the instance projection is rebuilt from at start-up (ReputationService.ListInstanceStates)."""

    def instance_states(self) -> AsyncIterator[tuple[InstanceState, Reputation | None]]:
        """Every instance, with its reputation fields (score, health, phase, cooldown_until, version)."""
        ...


class ControlSource(Protocol):
    """Where paused controls and plans are rebuilt from (OpsService.ListPausedControls / ListPlans)."""

    def paused_controls(self) -> AsyncIterator[ExecutionControl]: ...

    def plans(self) -> AsyncIterator[Plan]: ...


class RecentIntentKeys(Protocol):
    """Idempotency keys this process used lately, with the intent each created, so that a retry is answered
    from storage without a decision (which would take a rate slot). A hint only: a key it does not know is
    settled by storage's unique (organization, key)."""

    def intent_id(self, organization_id: str, idempotency_key: str) -> str | None: ...

    def remember(self, organization_id: str, idempotency_key: str, intent_id: str) -> None: ...


class InstanceArrivals(Protocol):
    """Told when the projection learns of an instance (registered or changed), so that intents of its
    organization waiting for one are decided again at once rather than at the end of their grace."""

    def arrived(self, organization_id: str) -> None: ...
