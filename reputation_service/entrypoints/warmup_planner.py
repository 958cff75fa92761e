"""The warm-up planner's loop: every `interval`, submit what is due and learn what became of what was
submitted; every `plan_interval`, make the day's plans for the numbers that have none yet."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from libs.periodic import run_periodically
from libs.stores import StoreOutages
from reputation_service.application.plan_warmup import PlanningResult, SubmissionResult, TrackingResult

log = logging.getLogger(__name__)

PLANNED = Counter(
    "whatlead_warmup_messages_planned_total", "Warm-up messages planned, to be submitted when due"
)
SUBMITTED = Counter(
    "whatlead_warmup_messages_submitted_total", "Warm-up messages the Gate took (approved, queued or sent)"
)
REFUSED = Counter(
    "whatlead_warmup_messages_refused_total",
    "Warm-up messages the Gate refused, by its reason (blocked or dropped, or the call refused)",
    ["reason"],
)
SKIPPED = Counter(
    "whatlead_warmup_messages_skipped_total",
    "Warm-up messages skipped: their time passed before they were submitted",
)
SENT = Counter("whatlead_warmup_messages_sent_total", "Warm-up messages the Gate reports sent")
FAILED = Counter("whatlead_warmup_messages_failed_total", "Warm-up messages whose send failed after approval")


class WarmupPlanner:
    def __init__(
        self,
        plan: Callable[[], Awaitable[PlanningResult]],
        submit: Callable[[], Awaitable[SubmissionResult]],
        track: Callable[[], Awaitable[TrackingResult]],
        *,
        interval: float,
        plan_interval: float,
        outages: StoreOutages | None = None,
    ) -> None:
        self._plan = plan
        self._submit = submit
        self._track = track
        self._interval = interval
        self._plan_interval = plan_interval
        self._planned_at: float | None = None
        self._outages = outages or StoreOutages("reputation")

    async def run(self, stop: asyncio.Event) -> None:
        self._planned_at = None
        await run_periodically(
            stop, self.run_once, every=self._interval, name="warm-up pass", outages=self._outages, log=log
        )

    async def run_once(self) -> None:
        """Plans the days (every `plan_interval`), submits what is due, and tracks what was submitted."""
        if self._planned_at is None or time.monotonic() - self._planned_at >= self._plan_interval:
            self.count_planning(await self._plan())
            self._planned_at = time.monotonic()
        self.count_submission(await self._submit())
        self.count_tracking(await self._track())

    @staticmethod
    def count_planning(result: PlanningResult) -> None:
        PLANNED.inc(result.messages)
        SKIPPED.inc(result.skipped)
        if result.plans:
            log.info("warm-up plans made", extra={"plans": result.plans, "messages": result.messages})

    @staticmethod
    def count_submission(result: SubmissionResult) -> None:
        SUBMITTED.inc(result.submitted)
        SKIPPED.inc(result.skipped)
        for reason, count in result.refused.items():
            REFUSED.labels(reason=reason).inc(count)

    @staticmethod
    def count_tracking(result: TrackingResult) -> None:
        SENT.inc(result.sent)
        FAILED.inc(result.failed)
        for reason, count in result.refused.items():
            REFUSED.labels(reason=reason).inc(count)
