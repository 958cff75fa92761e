"""Keep the kill-switch projection: ops paused or resumed a scope."""

from __future__ import annotations

from dataclasses import dataclass

from executor_service.domain.ports import ExecutorUnitOfWork
from libs.seedwork.clock import Clock
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.shared_kernel import ControlScope

_JOB_COLUMN = {
    ControlScope.ORGANIZATION: "organization_id",
    ControlScope.INSTANCE: "instance_id",
    ControlScope.CAMPAIGN: "campaign_id",
}


@dataclass(frozen=True)
class ApplyControlChange:
    """Ops changed the control of a scope (paused it, resumed it, moved its end)."""

    control: ExecutionControl


class ApplyControlChangeHandler:
    """Stores the newest version of a scope's control (older, reordered versions are dropped). When a
    scope is no longer paused, the jobs it held become runnable at once instead of at their re-check."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def __call__(self, uow: ExecutorUnitOfWork, command: ApplyControlChange) -> bool:
        """Inside the caller's transaction (the event consumer's); True when the control was newer."""
        control = command.control
        now = self._clock.now()
        if not await uow.controls.save_if_newer(control, projected_at=now):
            return False
        if not control.holds(now):
            await uow.jobs.wake_held(
                control.organization_id, _JOB_COLUMN[control.scope], control.scope_id, now
            )
        return True
