"""The kill-switch: pausing and resuming a scope, the timed pauses that end by themselves, and the reads.

A change commits the control, its `ExecutionControlChanged` and its audit entry together; the commit wakes
the outbox relay, so the event is on its way to the Gate and the Executor within milliseconds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from libs.seedwork.access import Principal
from libs.seedwork.clock import Clock
from libs.seedwork.organizations import require_organization
from libs.seedwork.pagination import Page, PageRequest
from libs.seedwork.shared_kernel import ControlScope
from ops_service.application.races import settled
from ops_service.domain.audit import AuditEntry, operator_actor
from ops_service.domain.control import ControlReason, ExecutionControl, Scope, operator_reason
from ops_service.domain.ports import ControlFilter, OpsUnitOfWork


@dataclass(frozen=True, kw_only=True)
class PauseExecution:
    organization_id: str
    scope: ControlScope | None
    scope_id: str
    reason: ControlReason | None
    note: str
    paused_until: datetime | None
    operator: str  # the operator's own name, recorded beside the credential
    principal: Principal


class PauseExecutionHandler:
    def __init__(self, uow: Callable[[], OpsUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, command: PauseExecution) -> ExecutionControl:
        scope = Scope.of(command.organization_id, command.scope, command.scope_id)
        reason = operator_reason(command.reason)
        return await settled(lambda: self._pause(command, scope, reason))

    async def _pause(self, command: PauseExecution, scope: Scope, reason: ControlReason) -> ExecutionControl:
        actor = operator_actor(command.principal, command.operator)
        now = self._clock.now()
        async with self._uow() as uow:
            control = await uow.controls.get(scope)
            if control is None:
                control = ExecutionControl.active(scope, now)
                uow.controls.add(control)
            control.pause(
                reason=reason,
                note=command.note,
                paused_until=command.paused_until,
                actor=actor,
                caused_by=command.principal.actor,
                now=now,
            )
            uow.track(control)
            until = f" until {command.paused_until.isoformat()}" if command.paused_until else ""
            uow.audit.add(
                AuditEntry.record(
                    organization_id=scope.organization_id,
                    actor=actor,
                    action="execution.paused",
                    target=scope.target,
                    summary=f"paused ({reason.value}){until}" + (f": {command.note}" if command.note else ""),
                    now=now,
                )
            )
            await uow.commit()
        return control


@dataclass(frozen=True, kw_only=True)
class ResumeExecution:
    organization_id: str
    scope: ControlScope | None
    scope_id: str
    reason: ControlReason | None
    note: str
    operator: str
    principal: Principal


@dataclass(frozen=True)
class Resumed:
    control: ExecutionControl
    changed: bool  # False: the scope was active already (no new version, no event, no audit entry)


class ResumeExecutionHandler:
    def __init__(self, uow: Callable[[], OpsUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, command: ResumeExecution) -> Resumed:
        scope = Scope.of(command.organization_id, command.scope, command.scope_id)
        reason = operator_reason(command.reason)
        actor = operator_actor(command.principal, command.operator)
        now = self._clock.now()
        async with self._uow() as uow:
            control = await uow.controls.get(scope)
            if control is None:
                return Resumed(ExecutionControl.active(scope, now), changed=False)
            if not control.resume(
                reason=reason, note=command.note, actor=actor, caused_by=command.principal.actor, now=now
            ):
                return Resumed(control, changed=False)
            uow.track(control)
            uow.audit.add(
                AuditEntry.record(
                    organization_id=scope.organization_id,
                    actor=actor,
                    action="execution.resumed",
                    target=scope.target,
                    summary=f"resumed ({reason.value})" + (f": {command.note}" if command.note else ""),
                    now=now,
                )
            )
            await uow.commit()
        return Resumed(control, changed=True)


@dataclass(frozen=True)
class ExpirePauses:
    batch_size: int


class ExpirePausesHandler:
    """Resumes, in one transaction, up to a batch of timed pauses whose end has passed (reason EXPIRED, no
    actor). Replicas may all run it: each takes rows the others are not holding."""

    def __init__(self, uow: Callable[[], OpsUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, command: ExpirePauses) -> list[ExecutionControl]:
        now = self._clock.now()
        async with self._uow() as uow:
            resumed = [c for c in await uow.controls.expired(now, limit=command.batch_size) if c.expire(now)]
            for control in resumed:
                uow.track(control)
                uow.audit.add(
                    AuditEntry.record(
                        organization_id=control.organization_id,
                        actor="",
                        action="execution.resumed",
                        target=Scope(
                            organization_id=control.organization_id,
                            scope=control.scope,
                            scope_id=control.scope_id,
                        ).target,
                        summary="resumed (EXPIRED): the timed pause reached its end",
                        now=now,
                    )
                )
            if resumed:
                await uow.commit()
        return resumed


@dataclass(frozen=True, kw_only=True)
class ListControls:
    organization_id: str
    page: PageRequest
    where: ControlFilter = field(default_factory=ControlFilter)


class ListControlsHandler:
    def __init__(self, uow: Callable[[], OpsUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: ListControls) -> Page[ExecutionControl]:
        require_organization(query.organization_id)
        async with self._uow() as uow:
            controls = await uow.controls.list(
                query.organization_id, after_id=query.page.after_id, limit=query.page.size, where=query.where
            )
        return Page.of(controls, query.page, id_of=lambda control: control.id)


@dataclass(frozen=True, kw_only=True)
class ListPausedControls:
    """Empty `organization_id`: every organization's."""

    organization_id: str
    page: PageRequest


class ListPausedControlsHandler:
    """For the Gate and the Executor rebuilding their projections (internal)."""

    def __init__(self, uow: Callable[[], OpsUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: ListPausedControls) -> Page[ExecutionControl]:
        async with self._uow() as uow:
            controls = await uow.controls.list_paused(
                query.organization_id or None, after_id=query.page.after_id, limit=query.page.size
            )
        return Page.of(controls, query.page, id_of=lambda control: control.id)
