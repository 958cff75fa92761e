"""Read an instance's window counts: for GetWindowStats, and for whatever evaluates the instance."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from libs.seedwork.clock import Clock
from libs.seedwork.errors import InvalidArgument, NotFound, Reason
from libs.seedwork.ids import is_valid_id
from libs.seedwork.organizations import require_organization
from reputation_service.domain.ports import ReputationUnitOfWork
from reputation_service.domain.signals import DEFAULT_WINDOW, MAX_WINDOW, WindowCounts, plan_window


@dataclass(frozen=True, kw_only=True)
class CountingPolicy:
    """How windows are read: minute buckets are kept for `minute_horizon` (windows up to it are exact to the
    minute), and a send with no answer after `ack_timeout` is a soft failure."""

    minute_horizon: timedelta
    ack_timeout: timedelta


class WindowCountsReader:
    """Counts of one instance over windows ending now, inside the caller's transaction. The cost of a read
    depends on the window's length only (two edges of minute buckets plus one bucket per hour), never on
    how many signals the log holds."""

    def __init__(self, clock: Clock, policy: CountingPolicy) -> None:
        self._clock = clock
        self._policy = policy

    async def __call__(
        self, uow: ReputationUnitOfWork, instance_id: str, windows: Sequence[timedelta]
    ) -> list[WindowCounts]:
        now = self._clock.now()
        counts = []
        for length in windows:
            plan = plan_window(
                now, length, minute_horizon=self._policy.minute_horizon, ack_timeout=self._policy.ack_timeout
            )
            counts.append(WindowCounts.of(instance_id, plan, await uow.signals.totals(instance_id, plan)))
        return counts


@dataclass(frozen=True, kw_only=True)
class GetWindowStats:
    organization_id: str
    instance_id: str
    window: timedelta | None = None  # None: the last hour


class GetWindowStatsHandler:
    """One instance's counts over a window ending now (1 hour unless told, at most 30 days); NotFound also
    when the instance belongs to another organization."""

    def __init__(self, uow: Callable[[], ReputationUnitOfWork], reader: WindowCountsReader) -> None:
        self._uow = uow
        self._reader = reader

    async def __call__(self, query: GetWindowStats) -> WindowCounts:
        require_organization(query.organization_id)
        if not is_valid_id(query.instance_id):
            raise InvalidArgument.of("instance_id", "must be an instance id")
        window = query.window if query.window is not None else DEFAULT_WINDOW
        if not timedelta(0) < window <= MAX_WINDOW:
            raise InvalidArgument.of("window", "must be more than 0 and at most 30 days")
        async with self._uow() as uow:
            if await uow.instances.get(query.organization_id, query.instance_id) is None:
                raise NotFound(
                    f"instance {query.instance_id} not found",
                    reason=Reason.INSTANCE_NOT_FOUND,
                    metadata={"instance_id": query.instance_id},
                )
            [counts] = await self._reader(uow, query.instance_id, [window])
        return counts
