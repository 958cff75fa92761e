"""One job's outcome the database refuses never fails the batch it is recorded with (ADR 0031): the others
are written with their events, the refused one stays PROCESSING for the reconciler."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from executor_service.application.claim_jobs import ClaimJobs, ClaimJobsHandler
from executor_service.application.execute_job import Recorded, RecordOutcomes, RecordOutcomesHandler
from executor_service.infrastructure.proto_mapping import event_to_proto
from executor_service.infrastructure.tables import jobs, messaging
from executor_service.infrastructure.unit_of_work import SqlAlchemyExecutorUnitOfWork
from libs.db.engine import create_engine, session_factory
from libs.seedwork.clock import FakeClock
from tests.executor_service.unit.builders import T0, new_job

LEASE = timedelta(seconds=30)


@pytest.fixture
async def engine(migrated_database: Callable[[str], str]) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database("executor_service"))
    yield engine
    await engine.dispose()


async def test_an_outcome_the_database_refuses_fails_alone_and_the_batch_is_recorded(engine):
    clock = FakeClock(T0)
    sessions = session_factory(engine)

    def uow() -> SqlAlchemyExecutorUnitOfWork:
        return SqlAlchemyExecutorUnitOfWork(
            sessions, tables=messaging, to_message=event_to_proto, clock=clock
        )

    async with uow() as creating:
        for n in range(10):
            job = new_job(T0, client_message_id=f"3EB0{n:016X}")
            creating.jobs.add(job)
            creating.track(job)
        await creating.commit()
    claim = await ClaimJobsHandler(uow, clock, lease=LEASE)(ClaimJobs(10))
    assert len(claim.jobs) == 10
    # What the provider answered: one id longer than the column (200), one with a NUL byte.
    answers = {job.id: f"true_5511987654321@c.us_{job.client_message_id}" for job in claim.jobs}
    too_long, with_nul = claim.jobs[3].id, claim.jobs[7].id
    answers[too_long] = "x" * 201
    answers[with_nul] = "wamid.\x00"
    for job in claim.jobs:
        job.mark_sent(provider_message_id=answers[job.id], now=clock.now())

    recorded = await RecordOutcomesHandler(uow)(RecordOutcomes(tuple(claim.jobs)))

    by_job = dict(zip((job.id for job in claim.jobs), recorded, strict=True))
    assert by_job.pop(too_long) is Recorded.REFUSED and by_job.pop(with_nul) is Recorded.REFUSED
    assert set(by_job.values()) == {Recorded.WRITTEN}
    async with engine.connect() as connection:
        statuses = dict((await connection.execute(select(jobs.c.id, jobs.c.status))).all())
        published = set(
            (await connection.execute(select(messaging.outbox.c.event_id))).scalars()
        )  # MessageSent events
    assert {statuses[i] for i in by_job} == {"SENT"}
    assert statuses[too_long] == statuses[with_nul] == "PROCESSING"  # the reconciler settles them
    assert len(published) == len(by_job)  # one MessageSent per written job, none for the refused ones
