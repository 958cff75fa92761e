"""Builds the executor from its settings: the only place that knows every concrete class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp

from executor_service.application.apply_control import ApplyControlChangeHandler
from executor_service.application.claim_jobs import ClaimJobsHandler, ClaimNewJobsHandler, ExtendLeasesHandler
from executor_service.application.create_job import CreateExecutionJobHandler
from executor_service.application.execute_job import ExecuteJobHandler, RecordOutcomesHandler
from executor_service.application.instances import ProjectInstanceHandler, RecordInstanceFactHandler
from executor_service.application.ports import CapabilitiesOf
from executor_service.application.probe_health import ProbeInstancesHandler
from executor_service.application.queries import GetJobHandler, ListJobsHandler
from executor_service.application.reconcile_jobs import ReconcileExpiredLeasesHandler
from executor_service.application.record_provider_event import (
    RecordProviderReportHandler,
    RecordSendFailureHandler,
)
from executor_service.application.retry_job import RetryJobHandler
from executor_service.config import ExecutorSettings
from executor_service.domain.retry_policy import RetryPolicy
from executor_service.entrypoints.consumers import (
    ControlChangedConsumer,
    InstanceConsumer,
    IntentApprovedConsumer,
    ProviderEventConsumer,
)
from executor_service.entrypoints.grpc_servicer import ExecutorServicer
from executor_service.entrypoints.workers import ExecutionWorker, HealthProbes, IdleWorkers, Reconciler
from executor_service.infrastructure import metrics
from executor_service.infrastructure.health_prober import ProviderHealthProber
from executor_service.infrastructure.instance_directory import ProjectedInstances
from executor_service.infrastructure.kill_switch import ProjectedKillSwitch
from executor_service.infrastructure.proto_mapping import event_to_proto
from executor_service.infrastructure.provider_directory import provider_directory
from executor_service.infrastructure.provider_sender import ProviderMessageSender
from executor_service.infrastructure.tables import messaging
from executor_service.infrastructure.unit_of_work import SqlAlchemyExecutorUnitOfWork
from libs.bootstrap import Infrastructure, open_infrastructure
from libs.messaging.consumer import DurableConsumer, Redelivery
from libs.messaging.controls import HeardControls
from libs.periodic import PeriodicGauges
from libs.providers import create_client_session
from libs.providers.capabilities import capabilities_of
from libs.rpc.server import ServicerBinding
from libs.runtime import ServiceParts, Worker
from libs.seedwork.clock import Clock, SystemClock
from whatlead.events.v1 import gate_events_pb2, ops_events_pb2, provider_events_pb2, reputation_events_pb2
from whatlead.executor.v1 import executor_pb2, executor_pb2_grpc

SERVICE = "executor"
PROVIDER_REPORTS_LINGER_SECONDS = 0.1


def retry_policy(settings: ExecutorSettings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base_delay=timedelta(seconds=settings.backoff_base_seconds),
        factor=settings.backoff_factor,
        max_delay=timedelta(seconds=max(settings.backoff_max_seconds, settings.backoff_base_seconds)),
        jitter=settings.backoff_jitter,
        pause_recheck=timedelta(seconds=settings.pause_recheck_seconds),
    )


@dataclass
class Executor:
    """Every part of a running executor, for the runtime and for tests that drive pieces directly."""

    infra: Infrastructure
    http: aiohttp.ClientSession
    servicer: ExecutorServicer
    workers: list[ExecutionWorker]
    reconciler: Reconciler
    probes: HealthProbes | None  # None: EXECUTOR_PROBE_INTERVAL_SECONDS=0
    consumers: list[DurableConsumer]
    kill_switch: ProjectedKillSwitch
    instances: ProjectedInstances
    idle_workers: IdleWorkers
    create_job: CreateExecutionJobHandler
    unit_of_work: Callable[[], SqlAlchemyExecutorUnitOfWork]
    heard_controls: HeardControls  # ops' changes as published, straight into this process's kill-switch
    gauges: list[PeriodicGauges] = field(default_factory=list)

    def parts(self) -> ServiceParts:
        binding = ServicerBinding(
            self.servicer,
            executor_pb2_grpc.add_ExecutorServiceServicer_to_server,
            executor_pb2.DESCRIPTOR.services_by_name["ExecutorService"].full_name,
        )
        loops: list[Worker] = [self.reconciler.run, self.heard_controls.run]
        if self.probes is not None:
            loops.append(self.probes.run)
        loops += [consumer.run for consumer in self.consumers]
        loops += [worker.run for worker in self.workers]
        loops += [gauges.run for gauges in self.gauges]
        return self.infra.parts([binding], loops, self.close)

    async def close(self) -> None:
        await self.http.close()
        await self.infra.close()


async def assemble(
    settings: ExecutorSettings, *, clock: Clock | None = None, capabilities: CapabilitiesOf = capabilities_of
) -> Executor:
    """`capabilities`: the capability table (tests may pass their own rows)."""
    clock = clock or SystemClock()
    infra = await open_infrastructure(SERVICE, settings, messaging, clock, database_holds="jobs")
    http = create_client_session(limit=settings.http_connections, limit_per_host=settings.http_connections)
    directory = provider_directory(
        settings.endpoints(),
        session=http,
        timeout_seconds=settings.provider_timeout_seconds,
        instance_tokens=settings.instance_tokens(),
    )
    sender = ProviderMessageSender(directory, clock)
    kill_switch = ProjectedKillSwitch(infra.sessions, refresh=settings.kill_switch_refresh_seconds)
    instances = ProjectedInstances(
        infra.sessions,
        assumed_timelock=timedelta(seconds=settings.timelock_assumed_seconds),
        refresh=settings.kill_switch_refresh_seconds,
    )
    idle_workers = IdleWorkers()
    policy = retry_policy(settings)
    lease = timedelta(seconds=settings.lease_seconds)

    def uow(after_commit: Callable[[], None] | None = None) -> SqlAlchemyExecutorUnitOfWork:
        return SqlAlchemyExecutorUnitOfWork(
            infra.sessions,
            tables=messaging,
            to_message=event_to_proto,
            clock=clock,
            on_commit=infra.relay.wake,
            on_runnable=idle_workers.ring,
            after_commit=after_commit,
        )

    claim = ClaimJobsHandler(uow, clock, lease=lease)
    execute = ExecuteJobHandler(
        sender=sender,
        kill_switch=kill_switch,
        instances=instances,
        capabilities=capabilities,
        policy=policy,
        clock=clock,
        settle=lease,
    )
    extend = ExtendLeasesHandler(uow, clock, lease=lease)
    record = RecordOutcomesHandler(uow)
    workers = [
        ExecutionWorker(
            name=f"worker-{n}",
            claim=claim,
            execute=execute,
            extend=extend,
            record=record,
            batch_size=settings.batch_size,
            poll_interval=settings.poll_interval_seconds,
            lease_seconds=settings.lease_seconds,
            idle=idle_workers,
            outages=infra.outages,
        )
        for n in range(settings.workers)
    ]
    reconciler = Reconciler(
        ReconcileExpiredLeasesHandler(
            uow,
            sender=sender,
            instances=instances,
            capabilities=capabilities,
            policy=policy,
            clock=clock,
            lease=lease,
        ),
        interval=settings.reconcile_interval_seconds,
        outages=infra.outages,
    )
    probes = None
    if settings.probe_interval_seconds > 0:
        probes = HealthProbes(
            ProbeInstancesHandler(
                uow,
                prober=ProviderHealthProber(directory, timeout_seconds=settings.provider_timeout_seconds),
                clock=clock,
                interval=timedelta(seconds=settings.probe_interval_seconds),
                concurrency=settings.probe_concurrency,
            ),
            interval=settings.probe_interval_seconds,
            outages=infra.outages,
        )

    def consumer(
        context: str,
        durable: str,
        handlers: dict[type[Any], Any],
        after_commit: Callable[[], None] | None,
        *,
        linger: float = 0.0,
    ) -> DurableConsumer:
        return DurableConsumer(
            service=SERVICE,
            js=infra.js,
            subject_root=settings.subject_root,
            context=context,
            durable=durable,
            handlers=handlers,
            uow_factory=lambda: uow(after_commit),
            # Approvals arrive in bursts: one transaction per fetched batch (ADR 0021). A batch of 1024
            # can outlast the ack wait; the consumer's progress heartbeats cover it (ADR 0030).
            batch_size=1024,
            redelivery=Redelivery.of(settings, context),
            transaction_per_batch=True,
            linger=linger,
            outages=infra.outages,
        )

    create_job = CreateExecutionJobHandler(capabilities, clock)
    consumers = [
        consumer(
            "gate",
            "executor-intents",
            {
                gate_events_pb2.IntentApproved: IntentApprovedConsumer(
                    create_job,
                    claim_new=ClaimNewJobsHandler(clock, lease=lease),
                    idle=idle_workers,
                    batch_size=settings.batch_size,
                )
            },
            None,
        ),
        consumer(
            "ops",
            "executor-controls",
            {
                ops_events_pb2.ExecutionControlChanged: ControlChangedConsumer(
                    ApplyControlChangeHandler(clock)
                )
            },
            kill_switch.invalidate,
        ),
        consumer(
            "gateway",
            "executor-provider-events",
            {
                provider_events_pb2.ProviderEventReceived: ProviderEventConsumer(
                    RecordProviderReportHandler(clock),
                    clock,
                    record_failure=RecordSendFailureHandler(clock),
                    record_fact=RecordInstanceFactHandler(clock),
                )
            },
            instances.invalidate,
            # Up to three reports per message sent, none on a message's path: a few per transaction.
            linger=PROVIDER_REPORTS_LINGER_SECONDS,
        ),
        consumer(
            "reputation",
            "executor-instances",
            {
                reputation_events_pb2.InstanceRegistered: InstanceConsumer(ProjectInstanceHandler()),
                reputation_events_pb2.InstanceChanged: InstanceConsumer(ProjectInstanceHandler()),
            },
            None,
        ),
    ]
    servicer = ExecutorServicer(
        get_job=GetJobHandler(uow),
        list_jobs=ListJobsHandler(uow),
        retry_job=RetryJobHandler(uow, clock),
    )
    return Executor(
        infra,
        http,
        servicer,
        workers,
        reconciler,
        probes,
        consumers,
        kill_switch,
        instances,
        idle_workers,
        create_job,
        uow,
        HeardControls(infra.nats, settings.subject_root, kill_switch.heard),
        [
            PeriodicGauges(
                "job states count",
                lambda: metrics.report_jobs(infra.sessions),
                every=settings.gauges_interval_seconds,
                outages=infra.outages,
            )
        ],
    )


async def build(settings: ExecutorSettings, *, clock: Clock | None = None) -> ServiceParts:
    return (await assemble(settings, clock=clock)).parts()
