"""Builds the reputation service from its settings: the only place that knows every concrete class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import grpc

from libs.bootstrap import Infrastructure, open_infrastructure
from libs.messaging.consumer import DurableConsumer, Redelivery
from libs.providers import create_client_session
from libs.rpc.client import open_channel
from libs.rpc.server import ServicerBinding
from libs.runtime import ServiceParts, Worker
from libs.seedwork.clock import Clock, SystemClock
from reputation_service.application.apply_plan import ApplyPlanChangeHandler
from reputation_service.application.check_sessions import CheckSessionsHandler, StatusCheckSchedule
from reputation_service.application.connect_instance import (
    ConnectInstanceHandler,
    DeleteInstanceHandler,
    InstanceConnectionReader,
    LogoutInstanceHandler,
)
from reputation_service.application.observe_connection import ObserveConnectionsHandler
from reputation_service.application.plan_warmup import (
    PlanWarmupHandler,
    SubmitDueWarmupHandler,
    TrackSubmittedWarmupHandler,
)
from reputation_service.application.prune_signals import PruneSignalsHandler, Retention
from reputation_service.application.queries import (
    GetInstanceHandler,
    ListInstancesHandler,
    ListInstanceStatesHandler,
)
from reputation_service.application.record_signals import RecordSignalsHandler
from reputation_service.application.register_instance import RegisterInstanceHandler
from reputation_service.application.reputation_policy import OrganizationPolicies
from reputation_service.application.reputation_queries import (
    GetReputationHandler,
    ListReputationsHandler,
    ReputationCensusHandler,
)
from reputation_service.application.reputation_updates import (
    EvaluateDueHandler,
    EvaluationSchedule,
    ReputationUpdater,
)
from reputation_service.application.update_instance import UpdateInstanceHandler
from reputation_service.application.warmup_plans import (
    GetWarmupPlanHandler,
    GetWarmupSettingsHandler,
    SetWarmupSettingsHandler,
)
from reputation_service.application.window_counts import (
    CountingPolicy,
    GetWindowStatsHandler,
    WindowCountsReader,
)
from reputation_service.config import ReputationSettings
from reputation_service.entrypoints.consumers import (
    ConnectionStates,
    ExecutorEventSignals,
    PlanChanges,
    ProviderEventSignals,
)
from reputation_service.entrypoints.grpc_servicer import ReputationServicer
from reputation_service.entrypoints.onboarding_rpcs import OnboardingRpcs
from reputation_service.entrypoints.warmup_planner import WarmupPlanner
from reputation_service.entrypoints.warmup_rpcs import WarmupRpcs
from reputation_service.entrypoints.workers import (
    ReputationEvaluator,
    SessionStatusChecker,
    SignalPruner,
    count_outcomes,
)
from reputation_service.infrastructure.age_phase_source import AgePhaseSource
from reputation_service.infrastructure.gate_client import GrpcWarmupGate
from reputation_service.infrastructure.instance_changes import JetStreamInstanceChanges
from reputation_service.infrastructure.proto_mapping import event_to_proto
from reputation_service.infrastructure.provider_sessions import ProviderInstanceSessions
from reputation_service.infrastructure.stored_phase_source import StoredPhaseSource
from reputation_service.infrastructure.tables import messaging
from reputation_service.infrastructure.unit_of_work import SqlAlchemyReputationUnitOfWork
from reputation_service.infrastructure.warmup_store import SqlAlchemyWarmupStore
from whatlead.events.v1 import executor_events_pb2, ops_events_pb2, provider_events_pb2
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

SERVICE = "reputation"
# Up to three reports per message sent, none on a message's path: a few per transaction.
SIGNALS_LINGER_SECONDS = 0.1


@dataclass
class Reputation:
    """Every part of a running reputation service, for the runtime and for tests that drive pieces."""

    infra: Infrastructure
    servicer: ReputationServicer
    consumers: list[DurableConsumer]
    pruner: SignalPruner
    evaluator: ReputationEvaluator
    window_counts: WindowCountsReader
    unit_of_work: Callable[[], SqlAlchemyReputationUnitOfWork]
    # Onboarding: the providers' HTTP session, the live feed behind WatchInstance, the status check.
    http: aiohttp.ClientSession
    instance_changes: JetStreamInstanceChanges
    status_checker: SessionStatusChecker
    # The warm-up planner and its channel to the Gate: None without REPUTATION_GATE_ADDRESS.
    warmup_planner: WarmupPlanner | None = None
    gate_channel: grpc.aio.Channel | None = None

    def parts(self) -> ServiceParts:
        binding = ServicerBinding(
            self.servicer,
            reputation_pb2_grpc.add_ReputationServiceServicer_to_server,
            reputation_pb2.DESCRIPTOR.services_by_name["ReputationService"].full_name,
        )
        loops: list[Worker] = [self.pruner.run]
        loops += [self.evaluator.run_debounced, self.evaluator.run_periodic]
        loops += [consumer.run for consumer in self.consumers]
        loops += [self.instance_changes.run, self.status_checker.run]
        if self.warmup_planner is not None:
            loops.append(self.warmup_planner.run)
        return self.infra.parts([binding], loops, self.close)

    async def close(self) -> None:
        if self.gate_channel is not None:
            await self.gate_channel.close()
        await self.http.close()
        await self.infra.close()


async def assemble(settings: ReputationSettings, *, clock: Clock | None = None) -> Reputation:
    clock = clock or SystemClock()
    infra = await open_infrastructure(SERVICE, settings, messaging, clock, database_holds="instances")

    def uow() -> SqlAlchemyReputationUnitOfWork:
        return SqlAlchemyReputationUnitOfWork(
            infra.sessions,
            tables=messaging,
            to_message=event_to_proto,
            clock=clock,
            on_commit=infra.relay.wake,
        )

    window_counts = WindowCountsReader(
        clock, CountingPolicy(minute_horizon=settings.minute_horizon, ack_timeout=settings.ack_timeout)
    )
    policies = OrganizationPolicies.from_overrides(settings.thresholds, settings.organization_thresholds)
    updater = ReputationUpdater(clock, policies, window_counts, on_outcomes=count_outcomes)
    warmup_store = SqlAlchemyWarmupStore(infra.sessions)
    # The evaluated phase (reputation_states); the age-based stand-in only for a number without a state.
    phases = StoredPhaseSource(infra.sessions, AgePhaseSource(settings.warmup_newborn_days))
    http = create_client_session(limit=settings.http_connections, limit_per_host=settings.http_connections)
    sessions = ProviderInstanceSessions.from_endpoints(
        settings.endpoints(),
        instance_tokens=settings.instance_tokens(),
        session=http,
        timeout_seconds=settings.provider_timeout_seconds,
        gateway_url=settings.gateway_public_url,
        master_key=settings.webhook_master_key.get_secret_value().encode(),
    )
    observe = ObserveConnectionsHandler(clock)
    instance_changes = JetStreamInstanceChanges(infra.js, settings.subject_root)
    onboarding = OnboardingRpcs(
        connect=ConnectInstanceHandler(uow, sessions, observe, clock),
        logout=LogoutInstanceHandler(uow, sessions, observe, clock),
        delete=DeleteInstanceHandler(uow, sessions, observe, clock),
        reader=InstanceConnectionReader(uow, sessions, observe, clock),
        changes=instance_changes,
        qr_refresh_seconds=settings.watch_qr_refresh_seconds,
        watch_buffer=settings.watch_buffer,
    )
    servicer = ReputationServicer(
        register_instance=RegisterInstanceHandler(uow, clock, updater),
        update_instance=UpdateInstanceHandler(uow, clock),
        get_instance=GetInstanceHandler(uow),
        list_instances=ListInstancesHandler(uow),
        list_instance_states=ListInstanceStatesHandler(uow),
        get_window_stats=GetWindowStatsHandler(uow, window_counts),
        get_reputation=GetReputationHandler(uow),
        list_reputations=ListReputationsHandler(uow),
        warmup=WarmupRpcs(
            get_plan=GetWarmupPlanHandler(uow, warmup_store, phases, clock),
            get_settings=GetWarmupSettingsHandler(warmup_store),
            set_settings=SetWarmupSettingsHandler(warmup_store, clock),
        ),
        onboarding=onboarding,
    )
    record = RecordSignalsHandler(clock)

    def consumer(context: str, durable: str, handlers: dict[type[Any], Any]) -> DurableConsumer:
        return DurableConsumer(
            service=SERVICE,
            js=infra.js,
            subject_root=settings.subject_root,
            context=context,
            durable=durable,
            handlers=handlers,
            uow_factory=uow,
            batch_size=settings.signal_batch_size,
            redelivery=Redelivery.of(settings, context),
            # A batch's signals in one transaction, its bucket counters in one upsert (ADR 0044).
            transaction_per_batch=True,
            linger=SIGNALS_LINGER_SECONDS,
            outages=infra.outages,
        )

    executor_signals = ExecutorEventSignals(record, clock, updater)
    consumers = [
        consumer(
            "gateway",
            "reputation-provider-events",
            {provider_events_pb2.ProviderEventReceived: ProviderEventSignals(record, clock, updater)},
        ),
        # The registry's connection state from the same events, on its own durable consumer: the signals
        # path above never waits on it (ADR 0049).
        consumer(
            "gateway",
            "reputation-connection-states",
            {provider_events_pb2.ProviderEventReceived: ConnectionStates(observe, clock)},
        ),
        consumer(
            "executor",
            "reputation-send-outcomes",
            # One handler for both, so a batch's sends and failures are applied in stream order.
            {
                executor_events_pb2.MessageSent: executor_signals,
                executor_events_pb2.MessageFailed: executor_signals,
            },
        ),
        DurableConsumer(
            service=SERVICE,
            js=infra.js,
            subject_root=settings.subject_root,
            context="ops",
            durable="reputation-plans",
            handlers={ops_events_pb2.PlanChanged: PlanChanges(ApplyPlanChangeHandler())},
            uow_factory=uow,
            redelivery=Redelivery.of(settings, "ops"),
            outages=infra.outages,
        ),
    ]
    retention = Retention(
        signals=timedelta(days=settings.signal_retention_days),
        minute_buckets=settings.minute_horizon,
        hour_buckets=timedelta(days=settings.hour_bucket_retention_days),
    )
    pruner = SignalPruner(
        PruneSignalsHandler(uow, clock, retention),
        interval=settings.prune_interval_seconds,
        batch_size=settings.prune_batch_size,
        outages=infra.outages,
    )
    schedule = EvaluationSchedule(
        debounce=timedelta(seconds=settings.evaluation_debounce_seconds),
        aging=timedelta(seconds=settings.aging_interval_seconds),
        batch_size=settings.evaluation_batch_size,
    )
    evaluator = ReputationEvaluator(
        EvaluateDueHandler(uow, clock, updater, schedule),
        ReputationCensusHandler(uow),
        poll=settings.evaluation_poll_seconds,
        interval=settings.reputation_pass_interval_seconds,
        batch_size=settings.evaluation_batch_size,
        outages=infra.outages,
    )
    status_checker = SessionStatusChecker(
        CheckSessionsHandler(
            uow,
            sessions,
            observe,
            clock,
            StatusCheckSchedule(
                waiting_every=timedelta(seconds=settings.status_check_interval_seconds),
                others_every=timedelta(seconds=settings.status_check_idle_interval_seconds),
                batch_size=settings.status_check_batch_size,
            ),
        ),
        interval=settings.status_check_interval_seconds,
        outages=infra.outages,
    )
    reputation = Reputation(
        infra,
        servicer,
        consumers,
        pruner,
        evaluator,
        window_counts,
        uow,
        http=http,
        instance_changes=instance_changes,
        status_checker=status_checker,
    )
    if settings.gate_address:
        channel = open_channel(
            settings.gate_address,
            default_deadline=settings.gate_deadline_seconds,
            credential=settings.service_credential(),
        )
        gate = GrpcWarmupGate(channel, deadline_seconds=settings.gate_deadline_seconds)
        reputation.gate_channel = channel
        reputation.warmup_planner = WarmupPlanner(
            PlanWarmupHandler(uow, warmup_store, phases, clock),
            SubmitDueWarmupHandler(warmup_store, gate, clock),
            TrackSubmittedWarmupHandler(warmup_store, gate, clock),
            interval=settings.warmup_interval_seconds,
            plan_interval=settings.warmup_plan_interval_seconds,
            outages=infra.outages,
        )
    return reputation


async def build(settings: ReputationSettings, *, clock: Clock | None = None) -> ServiceParts:
    return (await assemble(settings, clock=clock)).parts()
