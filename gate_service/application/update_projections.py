"""Keeping the Gate's projections: durable copy first (in the caller's transaction), memory at once.

Memory is updated before the transaction commits: should the commit fail, the event is redelivered and
re-applied, and every update is version-gated, so applying it early is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from gate_service.application.ports import ControlSource, InstanceArrivals, InstanceStateSource
from gate_service.domain.ports import ConsumerUnitOfWork
from gate_service.domain.projection import GateProjection, InstanceState, Plan, Reputation
from libs.seedwork.clock import Clock
from libs.seedwork.controls import ExecutionControl


class ProjectionUpdater:
    def __init__(self, projection: GateProjection, clock: Clock, arrivals: InstanceArrivals) -> None:
        self.projection = projection
        self.clock = clock
        self._arrivals = arrivals

    async def instance_changed(self, uow: ConsumerUnitOfWork, state: InstanceState) -> bool:
        now = self.clock.now()
        if not self.projection.upsert_instance(state, now):
            return False
        current = self.projection.instances[state.instance_id]
        await uow.projections.save_instance(current, now)
        self._arrivals.arrived(current.organization_id)
        return True

    async def reputation_evaluated(
        self,
        uow: ConsumerUnitOfWork,
        instance_id: str,
        reputation: Reputation,
    ) -> bool:
        now = self.clock.now()
        if not self.projection.apply_reputation(
            instance_id,
            score=reputation.score,
            health=reputation.health,
            phase=reputation.phase,
            cooldown_until=reputation.cooldown_until,
            version=reputation.version,
            now=now,
        ):
            return False
        await uow.projections.save_instance(self.projection.instances[instance_id], now)
        return True

    async def cooldown_started(self, uow: ConsumerUnitOfWork, instance_id: str, until: datetime) -> bool:
        now = self.clock.now()
        if not self.projection.apply_cooldown(instance_id, until, now):
            return False
        await uow.projections.save_instance(self.projection.instances[instance_id], now)
        return True

    async def control_changed(self, uow: ConsumerUnitOfWork, control: ExecutionControl) -> bool:
        now = self.clock.now()
        if not self.projection.upsert_control(control, now):
            return False
        await uow.projections.save_control(control, now)
        return True

    async def plan_changed(self, uow: ConsumerUnitOfWork, plan: Plan) -> bool:
        if not self.projection.upsert_plan(plan):
            return False
        await uow.projections.save_plan(plan, self.clock.now())
        return True


class RebuildProjectionsHandler:
    """At start-up: fetch every instance (and, when Ops is there, paused controls and plans) and apply them
    like events. Version gates make it safe to run while consumers are already applying events."""

    def __init__(self, uow: Callable[[], ConsumerUnitOfWork], updater: ProjectionUpdater) -> None:
        self._uow = uow
        self._updater = updater

    async def from_instances(self, source: InstanceStateSource, *, batch: int = 200) -> int:
        count = 0
        pending: list[tuple[InstanceState, Reputation | None]] = []
        async for item in source.instance_states():
            pending.append(item)
            if len(pending) >= batch:
                count += await self._apply_instances(pending)
                pending = []
        if pending:
            count += await self._apply_instances(pending)
        return count

    async def _apply_instances(self, items: list[tuple[InstanceState, Reputation | None]]) -> int:
        async with self._uow() as uow:
            for state, reputation in items:
                await self._updater.instance_changed(uow, state)
                if reputation:
                    await self._updater.reputation_evaluated(uow, state.instance_id, reputation)
            await uow.commit()
        return len(items)

    async def from_ops(self, source: ControlSource) -> int:
        count = 0
        async with self._uow() as uow:
            async for control in source.paused_controls():
                count += await self._updater.control_changed(uow, control)
            async for plan in source.plans():
                count += await self._updater.plan_changed(uow, plan)
            await uow.commit()
        return count
