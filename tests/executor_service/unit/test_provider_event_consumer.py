"""Provider events as the gateway (or the Executor's own probes) publish them, applied by the consumer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from executor_service.application.instances import ProjectInstanceHandler, RecordInstanceFactHandler
from executor_service.application.record_provider_event import (
    RecordProviderReportHandler,
    RecordSendFailureHandler,
)
from executor_service.domain.events import MessageFailed, ProviderHealthReported
from executor_service.domain.instance import CappingLevel, InstanceHealth
from executor_service.domain.job import ExecutionStatus
from executor_service.domain.outcome import ErrorClass, RestrictionKind
from executor_service.entrypoints.consumers import InstanceConsumer, ProviderEventConsumer
from executor_service.infrastructure.proto_mapping import health_to_proto
from libs.rpc.convert import to_timestamp
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import ConnectionState, Provider, ProviderEngine
from tests.executor_service.unit.builders import ORG, T0
from tests.executor_service.unit.test_use_cases import Executor
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import provider_events_pb2 as pe
from whatlead.events.v1 import reputation_events_pb2
from whatlead.reputation.v1 import reputation_pb2


def consumer(ex: Executor) -> ProviderEventConsumer:
    return ProviderEventConsumer(
        RecordProviderReportHandler(ex.clock),
        ex.clock,
        record_failure=RecordSendFailureHandler(ex.clock),
        record_fact=RecordInstanceFactHandler(ex.clock),
    )


async def deliver(ex: Executor, event: pe.ProviderEventReceived) -> None:
    async with ex.uow as uow:
        await consumer(ex)(event, uow)
        await uow.commit()


def event(
    kind: pe.ProviderEventType.ValueType, *, instance_id: str = "", **fields: Any
) -> pe.ProviderEventReceived:
    return pe.ProviderEventReceived(
        meta=common_pb2.EventMeta(event_id=new_id(), organization_id=ORG, aggregate_id=instance_id),
        type=kind,
        provider=common_pb2.PROVIDER_WAHA,
        instance_id=instance_id,
        provider_instance_ref="sales-1",
        occurred_at=to_timestamp(T0),
        **fields,
    )


async def test_an_error_ack_with_463_for_our_waha_id_fails_the_job_restricted():
    ex = Executor()
    job_id = await ex.approve()
    await ex.run_due()
    client_id = ex.job(job_id).client_message_id
    await deliver(
        ex,
        event(
            pe.PROVIDER_EVENT_TYPE_MESSAGE_FAILED,
            provider_message_id=f"true_5511987654321@c.us_{client_id}",  # WAHA's serialized id
            from_me=True,
            error_code="463",
            restriction_kind=common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK,
        ),
    )
    job = ex.job(job_id)
    assert job.status is ExecutionStatus.FAILED
    assert job.last_error.restriction is RestrictionKind.REACHOUT_TIMELOCK
    assert len(ex.uow.events_of(MessageFailed)) == 1
    # A DELIVERED after it changes nothing.
    await deliver(
        ex,
        event(pe.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, provider_message_id=client_id, from_me=True),
    )
    assert ex.job(job_id).status is ExecutionStatus.FAILED


async def test_a_failure_of_an_incoming_message_is_not_about_our_sends():
    ex = Executor()
    job_id = await ex.approve()
    await ex.run_due()
    failed = event(
        pe.PROVIDER_EVENT_TYPE_MESSAGE_FAILED,
        provider_message_id=ex.job(job_id).client_message_id,
        from_me=False,
        error_code="463",
    )
    await deliver(ex, failed)
    assert ex.job(job_id).status is ExecutionStatus.SENT


async def test_a_failure_without_a_code_fails_the_job_permanent():
    ex = Executor()
    job_id = await ex.approve()
    await ex.run_due()
    failed = event(
        pe.PROVIDER_EVENT_TYPE_MESSAGE_FAILED,
        provider_message_id=ex.job(job_id).client_message_id,
        from_me=True,
    )
    await deliver(ex, failed)
    assert ex.job(job_id).last_error.error_class is ErrorClass.PERMANENT


async def test_instance_events_become_facts_of_the_projection():
    ex = Executor()
    instance = new_id()
    until = T0 + timedelta(hours=3)
    await deliver(
        ex,
        event(
            pe.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCKED,
            instance_id=instance,
            timelock_until=to_timestamp(until),
        ),
    )
    assert ex.uow.instance(instance).timelock_until == until
    await deliver(ex, event(pe.PROVIDER_EVENT_TYPE_INSTANCE_BANNED, instance_id=instance))
    assert ex.uow.instance(instance).connection is ConnectionState.BANNED
    await deliver(
        ex,
        event(
            pe.PROVIDER_EVENT_TYPE_CONNECTION_DISCONNECTED,
            instance_id=instance,
            connection_state=common_pb2.CONNECTION_STATE_LOGGED_OUT,
            connection_reason="401",
        ),
    )
    assert ex.uow.instance(instance).connection is ConnectionState.LOGGED_OUT
    await deliver(
        ex,
        event(
            pe.PROVIDER_EVENT_TYPE_CAPPING_CHANGED,
            instance_id=instance,
            capping_status=pe.CAPPING_STATUS_SECOND_WARNING,
            quota_used=45,
            quota_total=50,
        ),
    )
    stored = ex.uow.instance(instance)
    assert (stored.capping, stored.quota_used, stored.quota_total) == (CappingLevel.SECOND_WARNING, 45, 50)
    await deliver(ex, event(pe.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCK_LIFTED, instance_id=instance))
    assert not ex.uow.instance(instance).timelocked


async def test_a_probes_own_event_comes_back_as_no_change():
    ex = Executor()
    instance = new_id()
    async with ex.uow as uow:
        await InstanceConsumer(ProjectInstanceHandler())(
            reputation_events_pb2.InstanceRegistered(
                meta=common_pb2.EventMeta(event_id=new_id(), organization_id=ORG),
                instance=reputation_pb2.Instance(
                    id=instance,
                    organization_id=ORG,
                    provider=common_pb2.PROVIDER_WAHA,
                    provider_instance_ref="sales-1",
                    provider_version="2026.4.3",
                    provider_engine=common_pb2.PROVIDER_ENGINE_GOWS,
                    version=1,
                ),
            ),
            uow,
        )
        await uow.commit()
    assert ex.uow.instance(instance).provider_engine is ProviderEngine.GOWS
    profile = ex.uow.instance(instance)
    profile.report_health(
        InstanceHealth(
            connection=ConnectionState.LOGGED_OUT,
            timelocked=True,
            timelock_until=T0 + timedelta(hours=1),
            capping=CappingLevel.CAPPED,
            quota_used=50,
            quota_total=50,
        ),
        now=T0,
    )
    published = [health_to_proto(e) for e in profile.pull_events() if isinstance(e, ProviderHealthReported)]
    assert [p.type for p in published] == [
        pe.PROVIDER_EVENT_TYPE_CONNECTION_DISCONNECTED,
        pe.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCKED,
        pe.PROVIDER_EVENT_TYPE_CAPPING_CHANGED,
    ]
    assert all(p.origin == pe.PROVIDER_EVENT_ORIGIN_PROBE for p in published)
    assert all(p.meta.organization_id == ORG and p.meta.aggregate_id == instance for p in published)
    assert published[0].connection_state == common_pb2.CONNECTION_STATE_LOGGED_OUT
    assert published[2].capping_status == pe.CAPPING_STATUS_CAPPED and published[2].quota_total == 50
    # The same facts as the projection holds (the probe applied them first): no change, no new event.
    async with ex.uow as uow:
        uow.instances.save(profile)
        await uow.commit()
    for proto in published:
        await deliver(ex, proto)
    stored = ex.uow.instance(instance)
    assert stored.connection is ConnectionState.LOGGED_OUT and stored.capping is CappingLevel.CAPPED
    assert ex.uow.events_of(ProviderHealthReported) == []
    assert stored.provider is Provider.WAHA
