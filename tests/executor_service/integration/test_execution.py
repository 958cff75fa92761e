"""The executor against the real PostgreSQL, NATS JetStream and the provider simulator over HTTP."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from executor_service.infrastructure.proto_mapping import create_job_command
from executor_service.infrastructure.tables import jobs, messaging
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import Provider
from libs.testing.jetstream import publish, stored_events
from libs.testing.waiting import eventually
from tests.executor_service.integration.harness import (
    approved,
    control_changed,
    provider_event,
    running,
    settings,
    status_counts,
)
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import executor_events_pb2, gate_events_pb2, provider_events_pb2

inbox = messaging.inbox


def org() -> str:
    return f"org-{new_id()[-12:]}"


async def test_the_same_approved_event_delivered_three_times_makes_one_job_and_one_send(
    migrated_database, jetstream, root, simulator
):
    organization = org()
    event = approved(organization, session="dup-1")
    config = settings(migrated_database("executor_service"), root, simulator.base_url)
    async with running(config) as executor:
        for n in range(3):
            # The first twice as JetStream's duplicate window sees them; then as a late re-send with a
            # new message id (beyond the window), which only the inbox recognises.
            await publish(jetstream, root, event)
            if n == 2:
                await publish(jetstream, root, event, message_id=new_id())

        async def sent() -> bool:
            return (await status_counts(executor, organization)).get("SENT") == 1

        await eventually(sent, timeout=15)
        await asyncio.sleep(0.5)  # give a duplicate every chance to show up
        assert await status_counts(executor, organization) == {"SENT": 1}
        assert simulator.ledger.summary(include_entries=False)["by_session"] == {"dup-1": 1}

        async def published() -> bool:
            return any(
                isinstance(e, executor_events_pb2.MessageSent) and e.intent_id == event.intent_id
                for e in await stored_events(jetstream, root, "executor")
            )

        await eventually(published, timeout=10)


async def test_approvals_reach_idle_workers_at_once_not_at_their_next_poll(
    migrated_database, jetstream, root, simulator
):
    organization = org()
    # Workers that look at the table only every minute: a send within seconds means they were handed
    # the job (or woken) by the transaction that created it.
    config = settings(
        migrated_database("executor_service"), root, simulator.base_url, workers=2, poll_interval_seconds=60
    )
    async with running(config) as executor:
        await asyncio.sleep(0.3)  # the workers' first look found nothing: they wait
        for n in range(5):  # one at a time, as a quiet system sees them
            await publish(jetstream, root, approved(organization, session="quiet-1"))

            async def sent(expected: int = n + 1) -> bool:
                return (await status_counts(executor, organization)).get("SENT") == expected

            await eventually(sent, timeout=3)
        # A burst larger than the idle workers take: the rest is announced by the commit.
        for _ in range(40):
            await publish(jetstream, root, approved(organization, session="quiet-2"))

        async def all_sent() -> bool:
            return (await status_counts(executor, organization)).get("SENT") == 45

        await eventually(all_sent, timeout=10)
    assert simulator.ledger.summary(include_entries=False)["duplicates"] == {}


async def test_approvals_applied_as_one_batch_make_one_job_per_intent(
    migrated_database, jetstream, root, simulator
):
    organization = org()
    first, second = approved(organization, session="batch-1"), approved(organization, session="batch-1")
    again = gate_events_pb2.IntentApproved()
    again.CopyFrom(first)
    again.meta.event_id = new_id()  # the same intent approved in another event
    # All in the stream before the executor starts, so its consumer fetches them as one batch: the same
    # event twice (re-published beyond the duplicate window), the same intent twice, and another intent.
    for event, message_id in ((first, None), (first, new_id()), (again, None), (second, None)):
        await publish(jetstream, root, event, message_id=message_id)
    config = settings(migrated_database("executor_service"), root, simulator.base_url)
    async with running(config) as executor:

        async def sent() -> bool:
            return (await status_counts(executor, organization)).get("SENT") == 2

        await eventually(sent, timeout=15)
        await asyncio.sleep(0.5)  # give a duplicate every chance to show up
        assert await status_counts(executor, organization) == {"SENT": 2}
        assert simulator.ledger.summary(include_entries=False)["by_session"] == {"batch-1": 2}


async def test_eight_workers_racing_on_2000_jobs_send_each_exactly_once(migrated_database, root, simulator):
    organization = org()
    config = settings(
        migrated_database("executor_service"), root, simulator.base_url, workers=8, batch_size=25
    )
    async with running(config, workers=False) as executor:
        create = executor.create_job  # the consumer's own use case, minus the broker
        for chunk in range(20):
            async with executor.unit_of_work() as uow:
                for n in range(100):
                    event = approved(organization, session=f"race-{n % 10}", phone=f"55119{chunk:02d}{n:05d}")
                    await create(uow, create_job_command(event, Provider.SIMULATOR))
                await uow.commit()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(worker.run(stop)) for worker in executor.workers]
        assert len(tasks) == 8

        async def all_sent() -> bool:
            return (await status_counts(executor, organization)).get("SENT") == 2000

        await eventually(all_sent, timeout=60, every=0.2)
        stop.set()
        await asyncio.gather(*tasks)
    summary = simulator.ledger.summary(include_entries=False)
    assert summary["count"] == 2000
    assert summary["duplicates"] == {}
    assert summary["with_client_id"] == 2000


async def test_a_transient_failure_is_retried_and_sent_once(migrated_database, jetstream, root, simulator):
    organization = org()
    simulator.configure_session("flaky-1", fail_next=2, fail_status=503)
    event = approved(organization, session="flaky-1")
    async with running(settings(migrated_database("executor_service"), root, simulator.base_url)) as executor:
        await publish(jetstream, root, event)

        async def sent() -> bool:
            return (await status_counts(executor, organization)).get("SENT") == 1

        await eventually(sent, timeout=20)

        async def events_out() -> bool:
            stored = await stored_events(jetstream, root, "executor")
            mine = [e for e in stored if getattr(e, "intent_id", None) == event.intent_id]
            return [type(e).__name__ for e in mine] == [
                "MessageRetryScheduled",
                "MessageRetryScheduled",
                "MessageSent",
            ]

        await eventually(events_out, timeout=10)
    assert len(simulator.ledger) == 1
    [sent_event] = [
        e
        for e in await stored_events(jetstream, root, "executor")
        if isinstance(e, executor_events_pb2.MessageSent)
    ]
    assert sent_event.attempts == 3


async def test_a_463_fails_once_and_publishes_the_restriction(migrated_database, jetstream, root, simulator):
    organization = org()
    simulator.configure_session("cold-1", timelock_next=5)
    event = approved(organization, session="cold-1")
    async with running(settings(migrated_database("executor_service"), root, simulator.base_url)) as executor:
        await publish(jetstream, root, event)

        async def failed_event() -> list:
            return [
                e
                for e in await stored_events(jetstream, root, "executor")
                if isinstance(e, executor_events_pb2.MessageFailed) and e.intent_id == event.intent_id
            ]

        async def published() -> bool:
            return len(await failed_event()) == 1

        await eventually(published, timeout=15)
        [failed] = await failed_event()
        assert failed.error.restriction_kind == common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK
        assert failed.attempts == 1 and failed.meta.correlation_id == event.intent_id
        await asyncio.sleep(0.5)
        assert await status_counts(executor, organization) == {"FAILED": 1}
    assert simulator.session("cold-1").timelock_next == 4  # exactly one call reached the provider
    assert len(simulator.ledger) == 0


async def test_a_paused_organization_is_not_sent_until_resumed(migrated_database, jetstream, root, simulator):
    organization = org()
    config = settings(migrated_database("executor_service"), root, simulator.base_url)
    async with running(config) as executor:
        await publish(jetstream, root, control_changed(organization, paused=True, version=1))
        events = [approved(organization, session="paused-1", phone=f"55119876{n:05d}") for n in range(20)]
        for event in events:
            await publish(jetstream, root, event)

        async def all_held() -> bool:
            async with executor.infra.sessions() as session:
                from sqlalchemy import func, select

                from executor_service.infrastructure.tables import jobs

                held = await session.scalar(
                    select(func.count()).where(
                        jobs.c.organization_id == organization, jobs.c.held_by_pause.is_(True)
                    )
                )
            return held == 20

        await eventually(all_held, timeout=15)
        assert len(simulator.ledger) == 0
        assert (await status_counts(executor, organization)) == {"PENDING": 20}

        await publish(jetstream, root, control_changed(organization, paused=False, version=2))

        async def all_sent() -> bool:
            return (await status_counts(executor, organization)).get("SENT") == 20

        await eventually(all_sent, timeout=15)  # woken on resume, not after the one-minute re-check
    assert len(simulator.ledger) == 20


async def test_provider_acks_become_delivery_status_of_the_intent(
    migrated_database, jetstream, root, simulator
):
    organization = org()
    event = approved(organization, session="acks-1")
    async with running(settings(migrated_database("executor_service"), root, simulator.base_url)) as executor:
        await publish(jetstream, root, event)

        async def sent() -> bool:
            return (await status_counts(executor, organization)).get("SENT") == 1

        await eventually(sent, timeout=15)
        [entry] = simulator.ledger.entries
        for kind in (
            provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED,
            provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_READ,
            provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED,  # late and out of order: dropped
        ):
            await publish(
                jetstream, root, provider_event(organization, entry.provider_id, kind, session="acks-1")
            )

        async def statuses() -> list[int]:
            return [
                e.status
                for e in await stored_events(jetstream, root, "executor")
                if isinstance(e, executor_events_pb2.MessageDeliveryStatusChanged)
                and e.intent_id == event.intent_id
            ]

        async def both() -> bool:
            return len(await statuses()) == 2

        await eventually(both, timeout=15)
        await asyncio.sleep(0.3)
        assert len(await statuses()) == 2


async def test_delivery_reports_of_a_quiet_stream_are_applied_a_few_per_transaction(
    migrated_database, jetstream, root, simulator
):
    organization = org()
    async with running(settings(migrated_database("executor_service"), root, simulator.base_url)) as executor:
        for _ in range(6):
            await publish(jetstream, root, approved(organization, session="reports-1"))

        async def sent() -> bool:
            return (await status_counts(executor, organization)).get("SENT") == 6

        await eventually(sent, timeout=15)
        for entry in simulator.ledger.entries:  # one report every 10 ms: a quiet stream
            read = provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_READ
            await publish(jetstream, root, provider_event(organization, entry.provider_id, read, session="r"))
            await asyncio.sleep(0.01)

        async def all_read() -> bool:
            async with executor.infra.sessions() as session:
                read = await session.scalar(
                    select(func.count()).where(
                        jobs.c.organization_id == organization, jobs.c.delivery_status == "READ"
                    )
                )
            return read == 6

        await eventually(all_read, timeout=10)
        async with executor.infra.sessions() as session:
            # Each transaction stamps its inbox rows with one time: fewer times than reports, fewer commits.
            transactions = await session.scalar(
                select(func.count(func.distinct(inbox.c.processed_at))).where(
                    inbox.c.consumer == "executor-provider-events"
                )
            )
        assert transactions is not None and 1 <= transactions < 6
