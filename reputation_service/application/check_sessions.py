"""The periodic status check: asks the provider where each session stands and applies the answer through
the same path as a webhook (ObserveConnectionsHandler), so a webhook that never came is caught. Instances
waiting for a scan (CONNECTING, QR_REQUIRED) are checked often; the others now and then."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from libs.seedwork.clock import Clock
from libs.seedwork.errors import FailedPrecondition, Unavailable
from libs.seedwork.shared_kernel import ConnectionState
from reputation_service.application.observe_connection import ConnectionReport, ObserveConnectionsHandler
from reputation_service.application.onboarding_ports import InstanceSessions
from reputation_service.domain.ports import ReputationUnitOfWork

WAITING_STATES = frozenset({ConnectionState.CONNECTING, ConnectionState.QR_REQUIRED})
# Never onboarded here (no session to ask about), or nothing a provider will change by itself.
UNCHECKED_STATES = frozenset({ConnectionState.UNKNOWN, ConnectionState.LOGGED_OUT, ConnectionState.BANNED})


@dataclass(frozen=True, kw_only=True)
class StatusCheckSchedule:
    waiting_every: timedelta  # CONNECTING, QR_REQUIRED
    others_every: timedelta  # CONNECTED, DISCONNECTED
    batch_size: int


@dataclass(frozen=True)
class StatusChecked:
    checked: int = 0
    applied: int = 0
    unavailable: int = 0  # the provider did not answer: asked again next pass
    not_configured: int = 0  # refused, or no provider configured here


class CheckSessionsHandler:
    """One pass: the instances not asked about for their state's interval, a batch of each."""

    def __init__(
        self,
        uow: Callable[[], ReputationUnitOfWork],
        sessions: InstanceSessions,
        observe: ObserveConnectionsHandler,
        clock: Clock,
        schedule: StatusCheckSchedule,
    ) -> None:
        self._uow = uow
        self._sessions = sessions
        self._observe = observe
        self._clock = clock
        self._schedule = schedule

    async def __call__(self) -> StatusChecked:
        now = self._clock.now()
        others = frozenset(ConnectionState) - WAITING_STATES - UNCHECKED_STATES
        providers = self._sessions.configured()
        if not providers:
            return StatusChecked()
        batch = self._schedule.batch_size
        async with self._uow() as uow:
            due = await uow.instances.due_for_status_check(
                WAITING_STATES, providers, checked_before=now - self._schedule.waiting_every, limit=batch
            )
            due += await uow.instances.due_for_status_check(
                others, providers, checked_before=now - self._schedule.others_every, limit=batch
            )
        reports: list[ConnectionReport] = []
        unavailable = not_configured = 0
        for instance in due:
            try:
                view = await self._sessions.status(instance)
            except Unavailable:
                unavailable += 1
                continue
            except FailedPrecondition:
                not_configured += 1
                continue
            if view.state is ConnectionState.UNKNOWN:
                continue  # the provider's answer said nothing we can keep
            reports.append(
                ConnectionReport(
                    organization_id=instance.organization_id,
                    instance_id=instance.id,
                    state=view.state,
                    reason=view.reason,
                    observed_at=self._clock.now(),
                )
            )
        if not due:
            return StatusChecked()
        async with self._uow() as uow:
            # Every one asked, whatever it answered, waits its interval again: an answer that says
            # nothing (or a provider down) is not asked about at every pass.
            await uow.instances.mark_status_checked([i.id for i in due], at=now)
            result = await self._observe(uow, reports)
            await uow.commit()
        return StatusChecked(len(due), result.applied, unavailable, not_configured)
