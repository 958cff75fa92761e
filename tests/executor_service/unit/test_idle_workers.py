"""How work reaches an idle worker: rung to claim, or handed the claim of the transaction that created
the jobs (and only if that transaction committed)."""

from __future__ import annotations

import asyncio

from executor_service.application.claim_jobs import Claim, ClaimNewJobs, ClaimNewJobsHandler
from executor_service.domain.job import ExecutionStatus
from executor_service.entrypoints.workers import IdleWorkers
from libs.seedwork.clock import FakeClock
from tests.executor_service.unit.builders import LEASE, T0, new_job
from tests.executor_service.unit.fakes import FakeExecutorUnitOfWork


async def test_a_ring_wakes_one_waiting_worker_and_a_ring_with_nobody_waiting_is_kept():
    idle = IdleWorkers()
    first = asyncio.create_task(idle.wait(5))
    second = asyncio.create_task(idle.wait(5))
    await asyncio.sleep(0)
    idle.ring()
    done, pending = await asyncio.wait({first, second}, timeout=1, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1 and len(pending) == 1 and done.pop().result() is None
    idle.ring()
    assert await asyncio.wait_for(pending.pop(), 1) is None
    idle.ring()  # nobody waits: the next worker to wait does not wait
    assert await asyncio.wait_for(idle.wait(5), 0.1) is None


async def test_a_reserved_worker_gets_the_claim_even_if_its_wait_times_out_first():
    idle = IdleWorkers()
    waiting = asyncio.create_task(idle.wait(0.01))
    await asyncio.sleep(0)
    reservation = idle.reserve()
    assert reservation is not None and idle.reserve() is None  # the only idle worker is taken
    await asyncio.sleep(0.05)  # past the worker's poll interval: it keeps waiting for its claim
    assert not waiting.done()
    claim = Claim("token", [new_job()])
    reservation.hand_over(claim)
    assert await asyncio.wait_for(waiting, 1) is claim


async def test_a_rolled_back_claim_hands_over_nothing():
    idle = IdleWorkers()
    waiting = asyncio.create_task(idle.wait(5))
    await asyncio.sleep(0)
    reservation = idle.reserve()
    assert reservation is not None
    reservation.hand_over(None)
    assert await asyncio.wait_for(waiting, 1) is None  # the worker claims by itself


async def test_new_jobs_are_claimed_in_the_transaction_that_creates_them_if_due():
    uow = FakeExecutorUnitOfWork()
    due, later = new_job(), new_job(not_before=T0 + LEASE)
    async with uow:
        uow.jobs.add(due)
        uow.jobs.add(later)
        claim = ClaimNewJobsHandler(FakeClock(T0), lease=LEASE)(uow, ClaimNewJobs((due, later)))
        await uow.commit()
    assert claim.jobs == [due]
    stored = uow.stored(due.id)
    assert stored.status is ExecutionStatus.PROCESSING and stored.lease_token == claim.token
    assert stored.attempts == 1
    assert uow.stored(later.id).status is ExecutionStatus.PENDING


async def test_stopping_wakes_every_waiting_worker_and_no_worker_waits_after():
    idle = IdleWorkers()
    waiting = [asyncio.create_task(idle.wait(60)) for _ in range(3)]
    await asyncio.sleep(0)
    idle.stop()
    assert await asyncio.wait_for(asyncio.gather(*waiting), 1) == [None, None, None]
    assert await asyncio.wait_for(idle.wait(60), 0.1) is None
