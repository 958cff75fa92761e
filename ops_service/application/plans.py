"""Plans: read (the default when none was set), set, and listed for the Gate's projection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from libs.seedwork.access import Principal
from libs.seedwork.clock import Clock
from libs.seedwork.organizations import require_organization
from libs.seedwork.pagination import Page, PageRequest
from ops_service.application.races import settled
from ops_service.domain.audit import AuditEntry, operator_actor
from ops_service.domain.plan import Plan, PlanLimits
from ops_service.domain.ports import OpsUnitOfWork


@dataclass(frozen=True, kw_only=True)
class GetPlan:
    organization_id: str


class GetPlanHandler:
    def __init__(self, uow: Callable[[], OpsUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: GetPlan) -> Plan:
        require_organization(query.organization_id)
        async with self._uow() as uow:
            plan = await uow.plans.get(query.organization_id)
        return plan or Plan.default(query.organization_id)


@dataclass(frozen=True, kw_only=True)
class SetPlan:
    organization_id: str
    name: str
    limits: PlanLimits
    operator: str
    principal: Principal


class SetPlanHandler:
    """Replaces the organization's limits (PlanChanged, version +1)."""

    def __init__(self, uow: Callable[[], OpsUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, command: SetPlan) -> Plan:
        require_organization(command.organization_id)
        command.limits.validate()
        return await settled(lambda: self._set(command))

    async def _set(self, command: SetPlan) -> Plan:
        actor = operator_actor(command.principal, command.operator)
        now = self._clock.now()
        async with self._uow() as uow:
            plan = await uow.plans.get(command.organization_id)
            if plan is None:
                plan = Plan.default(command.organization_id)
                uow.plans.add(plan)
            plan.set(name=command.name, limits=command.limits, caused_by=command.principal.actor, now=now)
            uow.track(plan)
            limits = plan.limits
            uow.audit.add(
                AuditEntry.record(
                    organization_id=plan.organization_id,
                    actor=actor,
                    action="plan.set",
                    target=f"plan/{plan.organization_id}",
                    summary=(
                        f"plan {plan.name!r}: {limits.daily_message_cap}/day, "
                        f"{limits.monthly_message_cap}/month, {limits.max_instances} instances"
                    ),
                    now=now,
                )
            )
            await uow.commit()
        return plan


@dataclass(frozen=True, kw_only=True)
class ListPlans:
    """Empty `organization_id`: every organization's (only those whose plan was set)."""

    organization_id: str
    page: PageRequest


class ListPlansHandler:
    def __init__(self, uow: Callable[[], OpsUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: ListPlans) -> Page[Plan]:
        async with self._uow() as uow:
            plans = await uow.plans.list(
                query.organization_id or None, after_id=query.page.after_id, limit=query.page.size
            )
        return Page.of(plans, query.page, id_of=lambda plan: plan.id)
