"""Reading a number's warm-up plan, and an organization's warm-up settings. Scoped to one organization: an
instance of another one is not found."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from libs.seedwork.clock import Clock
from libs.seedwork.errors import InvalidArgument, NotFound, Reason
from libs.seedwork.ids import is_valid_id
from libs.seedwork.organizations import require_organization
from reputation_service.application.warmup_ports import PhaseSource, WarmupStore
from reputation_service.domain.ports import ReputationUnitOfWork
from reputation_service.domain.warmup_plan import WarmupPlan, WarmupSchedule, day_number

# Plans are kept for the days they were made; a year either way is more than anyone reads back.
MAX_DAYS_AWAY = 366


@dataclass(frozen=True, kw_only=True)
class GetWarmupPlan:
    organization_id: str
    instance_id: str
    day: date | None = None  # None: today in the organization's time zone


class GetWarmupPlanHandler:
    """The plan of one day with each message's progress; a day without a plan comes back empty, saying
    why (the number is past warm-up, or the planner has not reached it yet)."""

    def __init__(
        self,
        uow: Callable[[], ReputationUnitOfWork],
        store: WarmupStore,
        phases: PhaseSource,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._store = store
        self._phases = phases
        self._clock = clock

    async def __call__(self, query: GetWarmupPlan) -> WarmupPlan:
        require_organization(query.organization_id)
        if not is_valid_id(query.instance_id):
            raise InvalidArgument.of("instance_id", "must be an instance id")
        async with self._uow() as uow:
            instance = await uow.instances.get(query.organization_id, query.instance_id)
        if instance is None:
            raise NotFound(
                f"instance {query.instance_id} not found",
                reason=Reason.INSTANCE_NOT_FOUND,
                metadata={"instance_id": query.instance_id},
            )
        now = self._clock.now()
        schedule = await self._store.get_settings(instance.organization_id) or WarmupSchedule()
        today = schedule.local_day(now)
        day = query.day or today
        if abs((day - today).days) > MAX_DAYS_AWAY:
            raise InvalidArgument.of("day", f"must be within {MAX_DAYS_AWAY} days of today")
        plan = await self._store.get_plan(instance.id, day)
        if plan is not None:
            return plan
        phase = await self._phases.phase_of(instance, now)
        start, end = schedule.window(day)
        return WarmupPlan(
            organization_id=instance.organization_id,
            instance_id=instance.id,
            day=day,
            day_number=day_number(instance.created_at, day, schedule),
            phase=phase,
            window_start=start,
            window_end=end,
            time_zone=schedule.time_zone,
            messages=(),
            note=f"no plan for {day.isoformat()}: only connected NEWBORN and WARMING numbers that allow "
            f"WARMUP are planned, once a day (the number is {phase.value} now)",
        )


@dataclass(frozen=True, kw_only=True)
class GetWarmupSettings:
    organization_id: str


class GetWarmupSettingsHandler:
    """The organization's settings, or the defaults (08:00-20:00 America/Sao_Paulo, no friendly numbers)."""

    def __init__(self, store: WarmupStore) -> None:
        self._store = store

    async def __call__(self, query: GetWarmupSettings) -> WarmupSchedule:
        require_organization(query.organization_id)
        return await self._store.get_settings(query.organization_id) or WarmupSchedule()


@dataclass(frozen=True, kw_only=True)
class SetWarmupSettings:
    organization_id: str
    schedule: WarmupSchedule  # checked: built by WarmupSchedule.of


class SetWarmupSettingsHandler:
    """Replaces the organization's settings; plans already made keep the settings they were made with,
    the next day's plans use the new ones."""

    def __init__(self, store: WarmupStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def __call__(self, command: SetWarmupSettings) -> WarmupSchedule:
        require_organization(command.organization_id)
        await self._store.put_settings(command.organization_id, command.schedule, self._clock.now())
        return command.schedule
