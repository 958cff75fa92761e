"""Instance profiles, late failures and restriction holds against the real PostgreSQL, JetStream and the
provider simulator; the probe lease and the probe's events through the real outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from executor_service.domain.instance import CappingLevel, InstanceHealth, InstanceProfile
from executor_service.infrastructure.tables import instances, jobs
from libs.rpc.convert import to_timestamp
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import ConnectionState, Provider
from libs.testing.jetstream import meta, publish, simulator_instance_registered, stored_events
from libs.testing.waiting import eventually
from tests.executor_service.integration.harness import (
    approved,
    provider_event,
    running,
    settings,
    status_counts,
)
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import executor_events_pb2, provider_events_pb2, reputation_events_pb2


def org() -> str:
    return f"org-{new_id()[-12:]}"


def instance_fact(
    organization: str, instance_id: str, kind: provider_events_pb2.ProviderEventType.ValueType, **fields
) -> provider_events_pb2.ProviderEventReceived:
    return provider_events_pb2.ProviderEventReceived(
        meta=meta(organization, instance_id),
        type=kind,
        provider=common_pb2.PROVIDER_SIMULATOR,
        instance_id=instance_id,
        provider_instance_ref="locked-1",
        occurred_at=to_timestamp(datetime.now(UTC)),
        **fields,
    )


async def test_the_registry_feeds_the_instance_projection_newest_version_first(
    migrated_database, jetstream, root, simulator
):
    organization, instance = org(), new_id()
    registered = simulator_instance_registered(organization, instance, provider_instance_ref="reg-1")
    registered.instance.version = 2
    registered.instance.provider_version = "2026.4.3"
    older = reputation_events_pb2.InstanceChanged(meta=meta(organization, instance))
    older.instance.CopyFrom(registered.instance)
    older.instance.version = 1
    older.instance.provider_version = "2025.1.1"
    config = settings(migrated_database("executor_service"), root, simulator.base_url)
    async with running(config) as executor:
        await publish(jetstream, root, registered)
        await publish(jetstream, root, older)

        async def projected() -> tuple | None:
            async with executor.infra.sessions() as session:
                row = (
                    await session.execute(select(instances).where(instances.c.instance_id == instance))
                ).one_or_none()
            return None if row is None else (row.version, row.provider_version, row.organization_id)

        async def has_row() -> bool:
            return await projected() is not None

        await eventually(has_row, timeout=15)
        await asyncio.sleep(0.5)  # the older event had every chance to land
        assert await projected() == (2, "2026.4.3", organization)


async def test_an_error_ack_with_463_fails_the_sent_job_and_holds_the_instance_until_lifted(
    migrated_database, jetstream, root, simulator
):
    organization, instance = org(), new_id()
    first = approved(organization, session="locked-1", instance_id=instance)
    config = settings(migrated_database("executor_service"), root, simulator.base_url)
    async with running(config) as executor:
        await publish(jetstream, root, first)

        async def sent() -> bool:
            return (await status_counts(executor, organization)).get("SENT") == 1

        await eventually(sent, timeout=15)
        [entry] = simulator.ledger.entries
        ack = provider_event(
            organization,
            entry.provider_id,
            provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_FAILED,
            session="x",
        )
        ack.error_code = "463"
        ack.restriction_kind = common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK
        await publish(jetstream, root, ack)

        async def failed_event() -> list:
            return [
                e
                for e in await stored_events(jetstream, root, "executor")
                if isinstance(e, executor_events_pb2.MessageFailed) and e.intent_id == first.intent_id
            ]

        async def failed() -> bool:
            return len(await failed_event()) == 1

        await eventually(failed, timeout=15)
        [event] = await failed_event()
        assert event.error.restriction_kind == common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK
        assert event.error.code == "reachout_timelock"

        # The instance is time-locked now: its next job is held, not sent, not failed.
        second = approved(organization, session="locked-1", instance_id=instance, phone="5511900000002")
        await publish(jetstream, root, second)

        async def held() -> bool:
            async with executor.infra.sessions() as session:
                count = await session.scalar(
                    select(func.count()).where(jobs.c.intent_id == second.intent_id, jobs.c.held_by_pause)
                )
            return count == 1

        await eventually(held, timeout=15)
        assert len(simulator.ledger) == 1
        assert await status_counts(executor, organization) == {"FAILED": 1, "PENDING": 1}

        lifted = instance_fact(
            organization, instance, provider_events_pb2.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCK_LIFTED
        )
        await publish(jetstream, root, lifted)

        async def both_done() -> bool:
            return await status_counts(executor, organization) == {"FAILED": 1, "SENT": 1}

        await eventually(both_done, timeout=15)  # woken by the lift, not after the one-minute re-check
    assert simulator.ledger.summary(include_entries=False)["duplicates"] == {}


async def test_a_logged_out_instance_holds_its_jobs_and_sends_once_connected(
    migrated_database, jetstream, root, simulator
):
    organization, instance = org(), new_id()
    config = settings(migrated_database("executor_service"), root, simulator.base_url)
    async with running(config) as executor:
        logged_out = instance_fact(
            organization,
            instance,
            provider_events_pb2.PROVIDER_EVENT_TYPE_CONNECTION_DISCONNECTED,
            connection_state=common_pb2.CONNECTION_STATE_LOGGED_OUT,
            connection_reason="401",
        )
        await publish(jetstream, root, logged_out)
        await asyncio.sleep(0.5)
        for n in range(3):
            await publish(
                jetstream,
                root,
                approved(organization, session="locked-1", instance_id=instance, phone=f"55119{n:08d}"),
            )

        async def all_held() -> bool:
            async with executor.infra.sessions() as session:
                count = await session.scalar(
                    select(func.count()).where(jobs.c.organization_id == organization, jobs.c.held_by_pause)
                )
            return count == 3

        await eventually(all_held, timeout=15)
        assert len(simulator.ledger) == 0
        connected = instance_fact(
            organization,
            instance,
            provider_events_pb2.PROVIDER_EVENT_TYPE_CONNECTION_CONNECTED,
            connection_state=common_pb2.CONNECTION_STATE_CONNECTED,
        )
        await publish(jetstream, root, connected)

        async def all_sent() -> bool:
            return (await status_counts(executor, organization)).get("SENT") == 3

        await eventually(all_sent, timeout=15)
    assert len(simulator.ledger) == 3


async def test_two_replicas_never_take_the_same_instance_to_probe(migrated_database, root, simulator):
    config = settings(migrated_database("executor_service"), root, simulator.base_url)
    async with running(config, loops=False) as executor:
        organization = org()
        ids = [new_id() for _ in range(10)]
        async with executor.unit_of_work() as uow:
            for instance_id in ids:
                profile = InstanceProfile(
                    instance_id=instance_id,
                    organization_id=organization,
                    provider=Provider.SIMULATOR,
                    provider_instance_ref=f"probe-{instance_id[-4:]}",
                    version=1,
                )
                uow.instances.save(profile)
            await uow.commit()
        now = datetime.now(UTC)

        async def take(limit: int) -> list[str]:
            async with executor.unit_of_work() as uow:
                taken = await uow.instances.claim_probes(
                    now, next_at=now + timedelta(minutes=1), providers=["SIMULATOR"], limit=limit
                )
                await asyncio.sleep(0.2)  # both transactions hold their rows at once
                await uow.commit()
            return [t.instance_id for t in taken if t.organization_id == organization]

        first, second = await asyncio.gather(take(6), take(6))
        assert not set(first) & set(second)
        assert set(first) | set(second) <= set(ids)
        assert set(await take(10)).isdisjoint(ids)  # not due again for a minute


async def test_a_probes_finding_is_published_on_the_gateway_subject_and_applied(
    migrated_database, jetstream, root, simulator
):
    organization, instance = org(), new_id()
    config = settings(migrated_database("executor_service"), root, simulator.base_url)
    async with running(config) as executor:
        await publish(
            jetstream,
            root,
            simulator_instance_registered(organization, instance, provider_instance_ref="p-1"),
        )

        async def projected() -> bool:
            async with executor.unit_of_work() as uow:
                return await uow.instances.get(instance) is not None

        await eventually(projected, timeout=15)
        async with executor.unit_of_work() as uow:
            profile = await uow.instances.get(instance)
            assert profile is not None
            profile.report_health(
                InstanceHealth(
                    connection=ConnectionState.CONNECTED, capping=CappingLevel.FIRST_WARNING, quota_used=10
                ),
                now=datetime.now(UTC),
            )
            uow.instances.save(profile)
            uow.track(profile)
            await uow.commit()

        async def published() -> list:
            return [
                e
                for e in await stored_events(jetstream, root, "gateway")
                if isinstance(e, provider_events_pb2.ProviderEventReceived) and e.instance_id == instance
            ]

        async def both() -> bool:
            return len(await published()) == 2

        await eventually(both, timeout=15)
        events = await published()
        assert {e.origin for e in events} == {provider_events_pb2.PROVIDER_EVENT_ORIGIN_PROBE}
        assert {e.meta.organization_id for e in events} == {organization}
        assert {e.type for e in events} == {
            provider_events_pb2.PROVIDER_EVENT_TYPE_CONNECTION_CONNECTED,
            provider_events_pb2.PROVIDER_EVENT_TYPE_CAPPING_CHANGED,
        }
