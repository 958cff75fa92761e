"""The executor's background loops: workers that claim and send, the reconciler of expired leases, and the
health probes of instances."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time

from executor_service.application.claim_jobs import (
    Claim,
    ClaimJobs,
    ClaimJobsHandler,
    ExtendLeases,
    ExtendLeasesHandler,
)
from executor_service.application.execute_job import (
    ExecuteJob,
    ExecuteJobHandler,
    Outcome,
    Recorded,
    RecordOutcomes,
    RecordOutcomesHandler,
)
from executor_service.application.probe_health import ProbeInstances, ProbeInstancesHandler
from executor_service.application.reconcile_jobs import (
    ReconcileExpiredLeases,
    ReconcileExpiredLeasesHandler,
)
from executor_service.domain.job import MessageExecutionJob
from executor_service.infrastructure import metrics
from libs.periodic import run_periodically
from libs.stores import StoreOutages

log = logging.getLogger(__name__)


class IdleWorkers:
    """Where idle workers wait between their polls of the database, so work done in this process reaches
    one at once. Two ways to wake one:

    - `ring()`: jobs became runnable (created, retried, released from a pause); one worker wakes and claims.
      A worker that then claims a full batch rings again, so wake-ups cascade only as far as there is work
      (waking every idle worker for a handful of jobs would make them race for the same rows).
    - `reserve()`: a transaction that creates jobs sets an idle worker aside and claims the jobs for it
      (ClaimNewJobs); when the transaction ends, the reservation hands the worker that claim, or nothing
      (rolled back: the worker claims by itself). The job skips the worker's own claim transaction.
    """

    def __init__(self) -> None:
        self._waiters: collections.deque[asyncio.Future[Claim | None]] = collections.deque()
        self._rung = False
        self._stopping = False

    def ring(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._rung = True  # nobody idle: the next worker to wait goes straight on

    def stop(self) -> None:
        """Wake every waiting worker, and let none wait from now on (the service is stopping)."""
        self._stopping = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def reserve(self) -> Reservation | None:
        """An idle worker set aside for a claim to come, or None when none is idle."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return Reservation(waiter)
        return None

    async def wait(self, timeout: float) -> Claim | None:
        """Until rung (None), handed a claim, or `timeout` passed (None)."""
        if self._stopping:
            return None
        if self._rung:
            self._rung = False
            return None
        waiter: asyncio.Future[Claim | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            if waiter in self._waiters:  # not reserved: stop waiting
                self._waiters.remove(waiter)
                waiter.cancel()
                return None
            return await waiter  # reserved meanwhile: its transaction is about to end
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            waiter.cancel()  # a reservation holding it hands over nothing; its lease will expire
            raise


class Reservation:
    """An idle worker waiting for the claim of a transaction in progress."""

    def __init__(self, waiter: asyncio.Future[Claim | None]) -> None:
        self._waiter = waiter

    def hand_over(self, claim: Claim | None) -> None:
        """Give the worker its claim (None: nothing for it, it claims by itself)."""
        if not self._waiter.done():
            self._waiter.set_result(claim if claim is not None and claim.jobs else None)


class ExecutionWorker:
    """One claim loop: claim up to `batch_size` due jobs (committed PROCESSING under a lease), send them
    concurrently, record every outcome in one transaction, repeat. Two transactions per batch, however
    large, is what lets one process send thousands a second; while a batch's calls run, a heartbeat
    extends its leases, so a slow provider holds only its own batch (other workers keep going). On stop it
    claims nothing more and finishes the batch in hand."""

    def __init__(
        self,
        *,
        name: str,
        claim: ClaimJobsHandler,
        execute: ExecuteJobHandler,
        extend: ExtendLeasesHandler,
        record: RecordOutcomesHandler,
        batch_size: int,
        poll_interval: float,
        lease_seconds: float,
        idle: IdleWorkers | None = None,
        outages: StoreOutages | None = None,
    ) -> None:
        self.name = name
        self._claim = claim
        self._execute = execute
        self._extend = extend
        self._record = record
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._heartbeat_every = max(lease_seconds / 3, 0.05)
        self._idle = idle or IdleWorkers()
        # A database outage is logged once by the tracker, not once per claim, batch or job.
        self._outages = outages or StoreOutages("executor")

    async def run(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(self._stop_waiting_on(stop))
        handed: Claim | None = None
        try:
            while not stop.is_set() or handed is not None:  # a claim handed over is always sent
                claim = handed or await self._claim_some()
                handed = None
                if claim is None or not claim.jobs:
                    handed = await self._idle.wait(self._poll_interval)
                    continue
                if len(claim.jobs) == self._batch_size:
                    self._idle.ring()  # there may be more: wake another idle worker
                await self._run_batch(claim)
        finally:
            stopping.cancel()

    async def _stop_waiting_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._idle.stop()

    async def run_once(self) -> int:
        """Claim and execute one batch; returns how many jobs it held (for tests and tools)."""
        claim = await self._claim_some()
        if claim is None or not claim.jobs:
            return 0
        await self._run_batch(claim)
        return len(claim.jobs)

    async def _claim_some(self) -> Claim | None:
        try:
            claim = await self._claim(ClaimJobs(self._batch_size))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database away: try again after a pause, never crash the loop
            if self._outages.report(exc) is None:
                log.warning("claim failed", extra={"worker": self.name, "error": type(exc).__name__})
            await asyncio.sleep(self._poll_interval)
            return None
        metrics.CLAIMED.inc(len(claim.jobs))
        return claim

    async def _run_batch(self, claim: Claim) -> None:
        started = time.perf_counter()
        metrics.IN_FLIGHT.inc(len(claim.jobs))
        heartbeat = asyncio.create_task(self._heartbeat(claim))
        try:
            outcomes = await asyncio.gather(*(self._decide(job) for job in claim.jobs))
            decided = [job for job, outcome in zip(claim.jobs, outcomes, strict=True) if outcome is not None]
            try:
                recorded = await self._record(RecordOutcomes(tuple(decided)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Not recorded: the jobs stay PROCESSING, their leases expire, the reconciler settles them.
                if self._outages.report(exc) is None:
                    log.warning(
                        "recording outcomes failed", extra={"worker": self.name, "error": type(exc).__name__}
                    )
                return
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            metrics.IN_FLIGHT.dec(len(claim.jobs))
        elapsed = time.perf_counter() - started
        for job, outcome, written in zip(
            decided, [o for o in outcomes if o is not None], recorded, strict=True
        ):
            final = outcome if written is Recorded.WRITTEN else Outcome(written.value)
            metrics.EXECUTIONS.labels(job.provider.value, final.value).inc()
            metrics.SEND_SECONDS.labels(job.provider.value).observe(elapsed)
            if written is Recorded.LEASE_LOST:
                metrics.LEASE_LOST.inc()

    async def _decide(self, job: MessageExecutionJob) -> Outcome | None:
        try:
            return await self._execute(ExecuteJob(job))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The job stays PROCESSING; its lease expires and the reconciler settles it.
            if self._outages.report(exc) is None:
                log.exception("execution failed unexpectedly", extra={"job_id": job.id})
            return None

    async def _heartbeat(self, claim: Claim) -> None:
        extend = ExtendLeases(claim.token, tuple(job.id for job in claim.jobs))
        while True:
            await asyncio.sleep(self._heartbeat_every)
            try:
                await self._extend(extend)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._outages.report(exc) is None:
                    log.warning("lease extension failed", extra={"error": type(exc).__name__})


class Reconciler:
    """Every `interval`, takes over jobs whose lease expired and settles them with the provider."""

    def __init__(
        self,
        handler: ReconcileExpiredLeasesHandler,
        *,
        interval: float,
        batch: int = 100,
        outages: StoreOutages | None = None,
    ) -> None:
        self._handler = handler
        self._interval = interval
        self._batch = batch
        self._outages = outages or StoreOutages("executor")

    async def run_once(self) -> int:
        report = await self._handler(ReconcileExpiredLeases(self._batch))
        if report.rescued or report.needs_review:
            metrics.LEASES_EXPIRED.inc(report.rescued)
            for finding in ("found", "absent", "inconclusive", "unsupported", "needs_review", "unanswered"):
                count = getattr(report, finding)
                if count:
                    metrics.RECONCILED.labels(finding).inc(count)
            log.info(
                "reconciled expired leases",
                extra={
                    "rescued": report.rescued,
                    "found": report.found,
                    "absent": report.absent,
                    "inconclusive": report.inconclusive,
                    "unsupported": report.unsupported,
                    "needs_review": report.needs_review,
                    "unanswered": report.unanswered,
                },
            )
        return report.rescued + report.needs_review

    async def run(self, stop: asyncio.Event) -> None:
        await run_periodically(
            stop,
            self.run_once,
            every=self._interval,
            name="reconciliation pass",
            outages=self._outages,
            log=log,
            more_now=lambda handled: handled >= self._batch,
        )


class HealthProbes:
    """Every `interval`, probes the instances whose probe is due (each replica takes its own share, see
    ProbeInstancesHandler). A pass that fails (database away) is logged once per outage; a probe that
    fails is the handler's to count. Never crashes: the next pass tries again."""

    def __init__(
        self,
        handler: ProbeInstancesHandler,
        *,
        interval: float,
        batch: int = 100,
        outages: StoreOutages | None = None,
    ) -> None:
        self._handler = handler
        self._interval = interval
        self._batch = batch
        self._outages = outages or StoreOutages("executor")

    async def run_once(self) -> int:
        report = await self._handler(ProbeInstances(self._batch))
        for result, count in (
            ("answered", report.probed),
            ("changed", report.changed),
            ("failed", report.failed),
            ("skipped", report.skipped),
        ):
            if count:
                metrics.PROBES.labels(result).inc(count)
        for code, count in report.failures.items():
            metrics.PROBE_FAILURES.labels(code).inc(count)
        return report.probed + report.failed + report.skipped

    async def run(self, stop: asyncio.Event) -> None:
        await run_periodically(
            stop,
            self.run_once,
            every=min(self._interval, 5.0),
            name="health probe pass",
            outages=self._outages,
            log=log,
            more_now=lambda handled: handled >= self._batch,  # a full batch: more may be due now
        )
