"""What the kill-switch means for a job: which projected controls (`libs.seedwork.controls`) hold it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from libs.seedwork.controls import ExecutionControl
from libs.seedwork.shared_kernel import ControlScope


def job_scopes(*, organization_id: str, instance_id: str, campaign_id: str) -> list[tuple[ControlScope, str]]:
    """Every scope whose pause stops a job."""
    scopes = [(ControlScope.ORGANIZATION, organization_id), (ControlScope.INSTANCE, instance_id)]
    if campaign_id:
        scopes.append((ControlScope.CAMPAIGN, campaign_id))
    return scopes


@dataclass(frozen=True, slots=True)
class Hold:
    """The job may not be sent now; look again at `until` (None: no known end)."""

    scope: ControlScope
    until: datetime | None


def hold_for(
    controls: Iterable[ExecutionControl],
    *,
    organization_id: str,
    instance_id: str,
    campaign_id: str,
    now: datetime,
) -> Hold | None:
    """The pause that holds this job, if any. With several, the longest wins (an open-ended one first)."""
    wanted = set(
        job_scopes(organization_id=organization_id, instance_id=instance_id, campaign_id=campaign_id)
    )
    holds = [
        Hold(control.scope, control.paused_until)
        for control in controls
        if (control.scope, control.scope_id) in wanted
        and control.organization_id == organization_id
        and control.holds(now)
    ]
    if not holds:
        return None
    open_ended = [hold for hold in holds if hold.until is None]
    if open_ended:
        return open_ended[0]
    return max(holds, key=lambda hold: hold.until or now)
