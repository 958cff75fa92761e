"""The kill-switch as an operator uses it: a campaign is being sent, an ADMIN pauses through ops, and from
the moment PauseExecution returns at most the provider calls already in flight reach the provider (the
Executor's capacity: its workers times their batch, WORKERS * BATCH_SIZE = 32 here); while paused nothing
else goes and nothing fails; after ResumeExecution every message goes, exactly once. For the
organization, one instance and one campaign (the instance's and campaign's neighbours keep sending).

Ops, the Gate and the Executor run in this event loop on the run's databases, subject root and Redis
prefix; the provider simulator's ledger is the provider's record of what it was asked to send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import func, select

from executor_service.infrastructure.tables import jobs
from libs.provider_simulator import LedgerEntry
from libs.testing.waiting import eventually
from tests.conftest import NATS_URL, REDIS_URL
from tests.executor_service.integration.harness import own_streams, status_counts
from tests.kill_switch_path import BATCH_SIZE, WORKERS, KillSwitchPath, Paused, calls_after, kill_switch_path
from whatlead.ops.v1 import ops_pb2

STILL_PAUSED_SECONDS = 2.0  # how long a paused scope is watched for a call that should not happen
SETTLE_SECONDS = 1.0  # a call in flight at the pause is answered well within this (20 ms per call)


@pytest.fixture
async def path(
    migrated_database, jetstream, subject_root, redis_prefix, redis_client
) -> AsyncIterator[KillSwitchPath]:
    async with (
        own_streams(jetstream, subject_root) as root,
        kill_switch_path(
            js=jetstream,
            nats_url=NATS_URL,
            redis_url=REDIS_URL,
            redis_prefix=redis_prefix,
            root=root,
            database_urls={
                name: migrated_database(f"{name}_service") for name in ("ops", "gate", "executor")
            },
        ) as path,
    ):
        yield path


async def held_with_only_the_calls_in_flight(
    path: KillSwitchPath, paused: Paused, in_scope: Callable[[LedgerEntry], bool]
) -> int:
    """Asserts the pause let through at most the calls in flight and nothing after; their number."""
    assert path.bound == WORKERS * BATCH_SIZE == 32
    await asyncio.sleep(SETTLE_SECONDS)
    after = len(calls_after(path.entries(in_scope), paused))
    assert after <= path.bound, f"{after} calls reached the provider after the pause, in flight at most 32"
    await asyncio.sleep(STILL_PAUSED_SECONDS)
    assert len(calls_after(path.entries(in_scope), paused)) == after, "sent while paused"
    return after


async def everything_sent_once(path: KillSwitchPath, count: int) -> None:
    """The provider got each of the `count` messages exactly once, and every job is SENT."""
    await path.wait_for_calls(count)
    assert path.executor is not None

    async def all_sent() -> bool:
        assert path.executor is not None
        return await status_counts(path.executor, path.organization) == {"SENT": count}

    await eventually(all_sent, timeout=15)
    entries = path.entries()
    assert len(entries) == count and path.simulator.ledger.duplicates() == {}
    assert len({entry.client_id for entry in entries}) == count


async def unsent(path: KillSwitchPath, instance_id: str, *, other: bool = False) -> int:
    """How many jobs of the instance (or, `other`, of the other instances) are not SENT."""
    assert path.executor is not None
    of_instance = jobs.c.instance_id != instance_id if other else jobs.c.instance_id == instance_id
    async with path.executor.infra.sessions() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(jobs)
            .where(jobs.c.organization_id == path.organization, of_instance, jobs.c.status != "SENT")
        )
    return int(found or 0)


async def others_all_sent(path: KillSwitchPath, instance_id: str) -> bool:
    return await unsent(path, instance_id, other=True) == 0


async def no_job_failed(path: KillSwitchPath) -> None:
    assert path.executor is not None
    assert "FAILED" not in await status_counts(path.executor, path.organization)


async def test_an_organization_pause_stops_a_1000_message_campaign_at_the_calls_in_flight(path) -> None:
    await path.submit(1000, campaign_id="spring")
    async with path.executor_running():
        await path.wait_for_calls(200)  # mid-campaign
        paused = await path.pause(ops_pb2.CONTROL_SCOPE_ORGANIZATION, "")
        await held_with_only_the_calls_in_flight(path, paused, lambda _: True)
        assert len(path.entries()) < 1000  # the pause stopped the campaign: the rest waits
        await no_job_failed(path)

        await path.resume(ops_pb2.CONTROL_SCOPE_ORGANIZATION, "")
        await everything_sent_once(path, 1000)


async def test_an_instance_pause_stops_that_number_only(path) -> None:
    paused_session, instance_id = path.sessions[0], path.instance_ids[0]
    of_paused = path.of_session(paused_session)
    await path.submit(200)
    async with path.executor_running():
        await path.wait_for_calls(20, of_paused)
        paused = await path.pause(ops_pb2.CONTROL_SCOPE_INSTANCE, instance_id, of_paused)
        await held_with_only_the_calls_in_flight(path, paused, of_paused)
        # The other numbers send their share meanwhile: only the paused one's messages wait.
        await eventually(lambda: others_all_sent(path, instance_id), timeout=15)
        waiting = await unsent(path, instance_id)
        assert waiting > 0 and len(path.entries()) == 200 - waiting
        await no_job_failed(path)

        await path.resume(ops_pb2.CONTROL_SCOPE_INSTANCE, instance_id)
        await everything_sent_once(path, 200)


async def test_a_campaign_pause_stops_that_campaign_only(path) -> None:
    await path.submit(200, campaign_id="summer")
    await path.submit(100, campaign_id="autumn")
    summer, autumn = path.of_campaign("summer"), path.of_campaign("autumn")
    async with path.executor_running():
        await path.wait_for_calls(40, summer)
        paused = await path.pause(ops_pb2.CONTROL_SCOPE_CAMPAIGN, "summer", summer)
        await held_with_only_the_calls_in_flight(path, paused, summer)
        await path.wait_for_calls(100, autumn, timeout=15)  # the other campaign goes on
        assert len(path.entries(summer)) < 200
        await no_job_failed(path)

        await path.resume(ops_pb2.CONTROL_SCOPE_CAMPAIGN, "summer")
        await everything_sent_once(path, 300)
