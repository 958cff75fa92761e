"""The kill-switch: versions, events with the previous status, who paused, timed pauses ending by
themselves, and a resume of an active scope that changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.seedwork.access import Principal, Role
from libs.seedwork.errors import InvalidArgument
from libs.seedwork.pagination import page_request
from libs.seedwork.shared_kernel import ControlScope
from ops_service.application.controls import (
    ExpirePauses,
    ExpirePausesHandler,
    ListControls,
    ListControlsHandler,
    ListPausedControls,
    ListPausedControlsHandler,
    PauseExecution,
    PauseExecutionHandler,
    ResumeExecution,
    ResumeExecutionHandler,
)
from ops_service.domain import events
from ops_service.domain.control import ControlReason, ControlStatus
from ops_service.domain.ports import ControlFilter

ORG = "org-1"
KEY = Principal(ORG, Role.ADMIN, "0193bbbb-0000-7000-8000-000000000002")


def pause(scope=ControlScope.INSTANCE, scope_id="inst-1", **overrides) -> PauseExecution:
    fields = {
        "organization_id": ORG,
        "scope": scope,
        "scope_id": scope_id,
        "reason": ControlReason.INCIDENT,
        "note": "provider flapping",
        "paused_until": None,
        "operator": "",
        "principal": KEY,
    } | overrides
    return PauseExecution(**fields)


def resume(scope=ControlScope.INSTANCE, scope_id="inst-1", **overrides) -> ResumeExecution:
    fields = {
        "organization_id": ORG,
        "scope": scope,
        "scope_id": scope_id,
        "reason": None,
        "note": "",
        "operator": "",
        "principal": KEY,
    } | overrides
    return ResumeExecution(**fields)


async def test_every_change_is_a_new_version_with_an_event_carrying_the_previous_status(uow, clock) -> None:
    paused = await PauseExecutionHandler(uow, clock)(pause(operator="alice"))
    resumed = await ResumeExecutionHandler(uow, clock)(resume())

    assert (paused.version, paused.status, paused.reason) == (1, ControlStatus.PAUSED, ControlReason.INCIDENT)
    assert paused.actor == f"alice (key:{KEY.api_key_id})"
    assert resumed.changed and resumed.control.version == 2 and resumed.control.status is ControlStatus.ACTIVE
    assert (
        resumed.control.reason is ControlReason.MANUAL
    )  # what an operator's resume says when it says nothing
    changes = uow.events_of(events.ExecutionControlChanged)
    assert [(e.control.version, e.control.status, e.previous_status) for e in changes] == [
        (1, ControlStatus.PAUSED, ControlStatus.ACTIVE),
        (2, ControlStatus.ACTIVE, ControlStatus.PAUSED),
    ]
    assert [e.actor for e in changes] == [
        f"key:{KEY.api_key_id}"
    ] * 2  # the credential; the name is the control's
    assert [(a.action, a.target) for a in uow.audit.rows] == [
        ("execution.paused", "instance/inst-1"),
        ("execution.resumed", "instance/inst-1"),
    ]


async def test_resuming_an_active_scope_answers_active_and_changes_nothing(uow, clock) -> None:
    never_paused = await ResumeExecutionHandler(uow, clock)(resume(scope_id="inst-9"))
    await PauseExecutionHandler(uow, clock)(pause())
    await ResumeExecutionHandler(uow, clock)(resume())
    again = await ResumeExecutionHandler(uow, clock)(resume())

    assert not never_paused.changed and never_paused.control.status is ControlStatus.ACTIVE
    assert never_paused.control.version == 0
    assert not again.changed and again.control.version == 2
    assert len(uow.events_of(events.ExecutionControlChanged)) == 2
    assert len(uow.audit.rows) == 2


async def test_pausing_a_paused_scope_again_is_a_new_version(uow, clock) -> None:
    handler = PauseExecutionHandler(uow, clock)
    await handler(pause())
    again = await handler(pause(reason=ControlReason.COMPLIANCE, note="consent"))
    assert (again.version, again.reason, again.note) == (2, ControlReason.COMPLIANCE, "consent")
    assert uow.events_of(events.ExecutionControlChanged)[-1].previous_status is ControlStatus.PAUSED


async def test_an_organization_scope_is_the_organization_itself(uow, clock) -> None:
    handler = PauseExecutionHandler(uow, clock)
    first = await handler(pause(scope=ControlScope.ORGANIZATION, scope_id=""))
    second = await handler(pause(scope=ControlScope.ORGANIZATION, scope_id=ORG))
    assert first.scope_id == second.scope_id == ORG
    assert second.version == 2  # the same control


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"scope": None}, "scope"),
        ({"scope_id": ""}, "scope_id"),
        ({"scope": ControlScope.CAMPAIGN, "scope_id": " "}, "scope_id"),
        ({"scope": ControlScope.ORGANIZATION, "scope_id": "another-org"}, "scope_id"),
        ({"organization_id": ""}, "organization_id"),
        ({"reason": ControlReason.EXPIRED}, "reason"),
    ],
)
async def test_a_pause_that_names_no_scope_or_a_reason_only_ops_gives_is_refused(
    uow, clock, overrides, field
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await PauseExecutionHandler(uow, clock)(pause(**overrides))
    assert field in {v.field for v in refused.value.violations}
    assert uow.committed_events == [] and uow.controls.rows == {}


async def test_a_timed_pause_must_end_in_the_future(uow, clock) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await PauseExecutionHandler(uow, clock)(pause(paused_until=clock.now()))
    assert [v.field for v in refused.value.violations] == ["paused_until"]


async def test_a_timed_pause_is_resumed_by_ops_itself_once_its_time_has_come(uow, clock) -> None:
    await PauseExecutionHandler(uow, clock)(pause(paused_until=clock.now() + timedelta(minutes=10)))
    await PauseExecutionHandler(uow, clock)(pause(scope_id="inst-2"))  # until resumed
    expire = ExpirePausesHandler(uow, clock)

    assert await expire(ExpirePauses(batch_size=10)) == []
    clock.advance(minutes=10)
    [ended] = await expire(ExpirePauses(batch_size=10))

    assert (ended.scope_id, ended.status, ended.reason, ended.actor) == (
        "inst-1",
        ControlStatus.ACTIVE,
        ControlReason.EXPIRED,
        "",
    )
    assert ended.version == 2 and ended.paused_until is None
    last = uow.events_of(events.ExecutionControlChanged)[-1]
    assert last.actor == "" and last.previous_status is ControlStatus.PAUSED
    assert uow.audit.rows[-1].action == "execution.resumed" and uow.audit.rows[-1].actor == ""
    assert await expire(ExpirePauses(batch_size=10)) == []


async def test_listings_filter_and_page_and_the_internal_one_spans_organizations(uow, clock) -> None:
    handler = PauseExecutionHandler(uow, clock)
    for n in range(3):
        await handler(pause(scope_id=f"inst-{n}"))
    await handler(pause(scope=ControlScope.CAMPAIGN, scope_id="spring"))
    await handler(pause(organization_id="org-2", scope_id="x", principal=Principal.service()))
    await ResumeExecutionHandler(uow, clock)(resume(scope_id="inst-0"))
    list_controls = ListControlsHandler(uow)

    first = await list_controls(
        ListControls(
            organization_id=ORG, page=page_request(2, ""), where=ControlFilter(scope=ControlScope.INSTANCE)
        )
    )
    rest = await list_controls(
        ListControls(
            organization_id=ORG,
            page=page_request(2, first.next_page_token),
            where=ControlFilter(scope=ControlScope.INSTANCE),
        )
    )
    paused = await list_controls(
        ListControls(
            organization_id=ORG, page=page_request(0, ""), where=ControlFilter(status=ControlStatus.PAUSED)
        )
    )
    everywhere = await ListPausedControlsHandler(uow)(
        ListPausedControls(organization_id="", page=page_request(0, ""))
    )

    assert [c.scope_id for c in first.items + rest.items] == ["inst-0", "inst-1", "inst-2"]
    assert rest.next_page_token == ""
    assert {c.scope_id for c in paused.items} == {"inst-1", "inst-2", "spring"}
    assert {(c.organization_id, c.scope_id) for c in everywhere.items} == {
        (ORG, "inst-1"),
        (ORG, "inst-2"),
        (ORG, "spring"),
        ("org-2", "x"),
    }
