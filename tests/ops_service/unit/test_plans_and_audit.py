"""Plans (the default one, versions, limits) and the audit log (newest first, one organization's)."""

from __future__ import annotations

from typing import Any

import pytest

from libs.seedwork.access import Principal, Role
from libs.seedwork.errors import InvalidArgument
from libs.seedwork.pagination import page_request
from libs.seedwork.shared_kernel import ControlScope
from ops_service.application.audit import ListAuditEntries, ListAuditEntriesHandler
from ops_service.application.controls import PauseExecution, PauseExecutionHandler
from ops_service.application.plans import (
    GetPlan,
    GetPlanHandler,
    ListPlans,
    ListPlansHandler,
    SetPlan,
    SetPlanHandler,
)
from ops_service.domain import events
from ops_service.domain.control import ControlReason
from ops_service.domain.plan import PlanLimits

OWNER = Principal("org-1", Role.OWNER, "0193cccc-0000-7000-8000-000000000003")


def set_plan(organization_id: str = "org-1", **overrides: Any) -> SetPlan:
    fields: dict[str, Any] = {
        "organization_id": organization_id,
        "name": "starter",
        "limits": PlanLimits(daily_message_cap=1000, monthly_message_cap=20000, max_instances=3),
        "operator": "",
        "principal": OWNER,
    } | overrides
    return SetPlan(**fields)


async def test_an_organization_without_a_plan_has_the_unlimited_default(uow) -> None:
    plan = await GetPlanHandler(uow)(GetPlan(organization_id="org-1"))
    assert (plan.name, plan.limits, plan.version, plan.updated_at) == ("default", PlanLimits(), 0, None)


async def test_setting_a_plan_is_a_new_version_announced_with_its_actor(uow, clock) -> None:
    handler = SetPlanHandler(uow, clock)
    first = await handler(set_plan(operator="olga"))
    second = await handler(set_plan(name="", limits=PlanLimits(daily_message_cap=5)))

    assert (first.version, second.version) == (1, 2)
    assert second.name == "starter"  # a blank name keeps the current one
    stored = await GetPlanHandler(uow)(GetPlan(organization_id="org-1"))
    assert stored.limits == PlanLimits(daily_message_cap=5) and stored.version == 2
    changes = uow.events_of(events.PlanChanged)
    assert [(e.plan.version, e.actor) for e in changes] == [
        (1, f"key:{OWNER.api_key_id}"),  # the credential; the operator's name is in the audit log
        (2, f"key:{OWNER.api_key_id}"),
    ]


async def test_negative_limits_are_refused_field_by_field(uow, clock) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await SetPlanHandler(uow, clock)(
            set_plan(limits=PlanLimits(daily_message_cap=-1, monthly_message_cap=0, max_instances=-2))
        )
    assert {v.field for v in refused.value.violations} == {"limits.daily_message_cap", "limits.max_instances"}
    assert uow.committed_events == []


async def test_the_internal_listing_spans_organizations_and_a_named_one_only_its_own(uow, clock) -> None:
    for org in ("org-1", "org-2", "org-3"):
        await SetPlanHandler(uow, clock)(set_plan(org, principal=Principal.service()))
    everyone = await ListPlansHandler(uow)(ListPlans(organization_id="", page=page_request(2, "")))
    rest = await ListPlansHandler(uow)(
        ListPlans(organization_id="", page=page_request(2, everyone.next_page_token))
    )
    one = await ListPlansHandler(uow)(ListPlans(organization_id="org-2", page=page_request(0, "")))
    assert sorted(p.organization_id for p in everyone.items + rest.items) == ["org-1", "org-2", "org-3"]
    assert [p.organization_id for p in one.items] == ["org-2"]


async def test_the_audit_log_is_newest_first_paged_and_one_organizations(uow, clock) -> None:
    pause = PauseExecutionHandler(uow, clock)
    for n in range(3):
        clock.advance(seconds=1)
        await pause(
            PauseExecution(
                organization_id="org-1",
                scope=ControlScope.INSTANCE,
                scope_id=f"inst-{n}",
                reason=ControlReason.MANUAL,
                note="",
                paused_until=None,
                operator="alice",
                principal=OWNER,
            )
        )
    await SetPlanHandler(uow, clock)(set_plan("org-2", principal=Principal.service()))
    log = ListAuditEntriesHandler(uow)

    first = await log(ListAuditEntries(organization_id="org-1", page=page_request(2, "")))
    rest = await log(ListAuditEntries(organization_id="org-1", page=page_request(2, first.next_page_token)))

    assert [e.target for e in first.items + rest.items] == [
        "instance/inst-2",
        "instance/inst-1",
        "instance/inst-0",
    ]
    assert {e.actor for e in first.items} == {f"alice (key:{OWNER.api_key_id})"}
    assert rest.next_page_token == ""
