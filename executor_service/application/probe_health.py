"""Ask the providers how each projected instance is, and publish what changed as provider events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from executor_service.application.ports import HealthProber, ProbeFailed, profile_of
from executor_service.domain.instance import InstanceHealth, InstanceProfile
from executor_service.domain.ports import ExecutorUnitOfWork
from libs.seedwork.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeInstances:
    """Probe up to `limit` instances whose probe is due."""

    limit: int


@dataclass
class ProbeReport:
    probed: int = 0
    changed: int = 0  # instances whose probe published at least one change
    failed: int = 0  # probes without a usable answer (codes in `failures`)
    skipped: int = 0  # the provider offers no health check for this instance
    failures: dict[str, int] = field(default_factory=dict)


class ProbeInstancesHandler:
    """Takes the due instances (their next probe moved one interval ahead in the same transaction, so
    another replica skips them: one prober per instance), probes them with at most `concurrency` calls at
    once, and for each answer applies what changed to the projection and publishes it as a
    ProviderEventReceived (origin PROBE) in one transaction. Only changes are published: a probe that
    agrees with the last report (webhook or probe) publishes nothing. A failed probe changes nothing; it is
    logged once per outage of that instance, not once per probe."""

    def __init__(
        self,
        uow: Callable[[], ExecutorUnitOfWork],
        *,
        prober: HealthProber,
        clock: Clock,
        interval: timedelta,
        concurrency: int,
    ) -> None:
        self._uow = uow
        self._prober = prober
        self._clock = clock
        self._interval = interval
        self._limit = asyncio.Semaphore(concurrency)
        self._failing: set[str] = set()  # instances whose last probe failed (logged already)

    async def __call__(self, command: ProbeInstances) -> ProbeReport:
        report = ProbeReport()
        providers = [provider.value for provider in self._prober.providers()]
        if not providers:
            return report
        async with self._uow() as uow:
            now = self._clock.now()
            due = await uow.instances.claim_probes(
                now, next_at=now + self._interval, providers=providers, limit=command.limit
            )
            if due:
                await uow.commit()
        await asyncio.gather(*(self._probe(instance, report) for instance in due))
        return report

    async def _probe(self, instance: InstanceProfile, report: ProbeReport) -> None:
        profile = profile_of(instance, instance.provider)
        if not self._prober.can_probe(profile, instance.provider_instance_ref):
            report.skipped += 1
            return
        async with self._limit:
            try:
                health = await self._prober.probe(profile, instance.provider_instance_ref)
            except ProbeFailed as failed:
                report.failed += 1
                report.failures[failed.code] = report.failures.get(failed.code, 0) + 1
                if instance.instance_id not in self._failing:
                    self._failing.add(instance.instance_id)
                    log.warning(
                        "health probe failing",
                        extra={"instance_id": instance.instance_id, "code": failed.code},
                    )
                return
        report.probed += 1
        if instance.instance_id in self._failing:
            self._failing.discard(instance.instance_id)
            log.info("health probe answering again", extra={"instance_id": instance.instance_id})
        if await self._report(instance.instance_id, health):
            report.changed += 1

    async def _report(self, instance_id: str, health: InstanceHealth) -> bool:
        async with self._uow() as uow:
            instance = await uow.instances.get(instance_id)  # fresh: a webhook may have moved it meanwhile
            if instance is None:
                return False
            was_restricted = instance.restricted
            now = self._clock.now()
            if not instance.report_health(health, now=now):
                return False
            uow.instances.save(instance)
            uow.track(instance)
            if was_restricted and not instance.restricted:
                await uow.jobs.wake_instance(instance_id, now)
            await uow.commit()
        return True
