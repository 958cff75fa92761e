"""The connection state follows the provider: whoever heard it (a webhook through the gateway, the
Executor's probe, the registry's own status check, a ConnectInstance answer) reports it here, and the
instance keeps the newest report (domain/instance.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from libs.seedwork.clock import Clock
from libs.seedwork.shared_kernel import ConnectionState
from reputation_service.domain.instance import Instance
from reputation_service.domain.ports import ReputationUnitOfWork


@dataclass(frozen=True, kw_only=True)
class ConnectionReport:
    organization_id: str  # "": not said (webhooks); otherwise it must be the instance's
    instance_id: str
    state: ConnectionState
    reason: str
    observed_at: datetime


@dataclass(frozen=True)
class ConnectionsObserved:
    applied: int  # reports newer than what the instance had
    stale: int  # older than (or the same as) the last report applied: ignored
    unknown_instance: int  # about an instance the registry does not know: dropped


class ObserveConnectionsHandler:
    """Applies reports in the caller's unit of work (a consumer's batch, a status check); the caller
    commits. Reports about one instance are applied in the order of their observed time, so a batch that
    carries them out of order ends where the newest says."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def __call__(
        self, uow: ReputationUnitOfWork, reports: Sequence[ConnectionReport]
    ) -> ConnectionsObserved:
        applied = stale = unknown = 0
        now = self._clock.now()
        # A webhook names no organization (the gateway knows only the instance): the instance's own.
        organizations = await uow.instances.organizations_of(
            {r.instance_id for r in reports if r.instance_id}
        )
        # Read once per instance: a second read would forget the first report's change.
        loaded: dict[str, Instance | None] = {}
        for report in sorted(reports, key=lambda r: r.observed_at):
            organization = organizations.get(report.instance_id)
            if organization is None or report.organization_id not in ("", organization):
                unknown += 1
                continue
            if report.instance_id not in loaded:
                loaded[report.instance_id] = await uow.instances.get(organization, report.instance_id)
            instance = loaded[report.instance_id]
            if instance is None:
                unknown += 1
                continue
            version = instance.version
            if instance.observe_connection(
                report.state, reason=report.reason, observed_at=report.observed_at, now=now
            ):
                applied += 1
                if instance.version != version:
                    uow.track(instance)
                else:  # the same state, heard later: no new version, but later reports compare with it
                    await uow.instances.confirm_connection(instance)
            else:
                stale += 1
        return ConnectionsObserved(applied, stale, unknown)
