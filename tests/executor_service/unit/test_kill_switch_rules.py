"""Which pause holds a job."""

from __future__ import annotations

from datetime import timedelta

from executor_service.domain.controls import hold_for
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.shared_kernel import ControlScope
from tests.executor_service.unit.builders import ORG, T0


def control(
    scope: ControlScope, scope_id: str, *, paused: bool = True, until=None, version: int = 1, org=ORG
):
    return ExecutionControl(
        organization_id=org,
        scope=scope,
        scope_id=scope_id,
        paused=paused,
        paused_until=until,
        version=version,
        updated_at=T0,
    )


def check(controls, campaign: str = "c1"):
    return hold_for(controls, organization_id=ORG, instance_id="i1", campaign_id=campaign, now=T0)


def test_no_control_means_go():
    assert check([]) is None


def test_each_scope_holds_its_jobs():
    for scope, scope_id in [
        (ControlScope.ORGANIZATION, ORG),
        (ControlScope.INSTANCE, "i1"),
        (ControlScope.CAMPAIGN, "c1"),
    ]:
        hold = check([control(scope, scope_id)])
        assert hold is not None and hold.scope is scope and hold.until is None


def test_other_scopes_and_other_organizations_do_not_hold():
    assert check([control(ControlScope.INSTANCE, "i2"), control(ControlScope.CAMPAIGN, "c2")]) is None
    assert check([control(ControlScope.INSTANCE, "i1", org="other")]) is None
    assert check([control(ControlScope.CAMPAIGN, "c1")], campaign="") is None


def test_a_resumed_or_timed_out_pause_does_not_hold():
    assert check([control(ControlScope.ORGANIZATION, ORG, paused=False)]) is None
    assert check([control(ControlScope.ORGANIZATION, ORG, until=T0)]) is None
    assert check([control(ControlScope.ORGANIZATION, ORG, until=T0 + timedelta(seconds=1))]) is not None


def test_the_longest_pause_wins():
    short = control(ControlScope.INSTANCE, "i1", until=T0 + timedelta(minutes=1))
    long = control(ControlScope.CAMPAIGN, "c1", until=T0 + timedelta(hours=1))
    assert check([short, long]).until == T0 + timedelta(hours=1)
    assert check([short, control(ControlScope.ORGANIZATION, ORG)]).until is None
