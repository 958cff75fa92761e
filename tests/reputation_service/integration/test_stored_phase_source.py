"""The warm-up planner reads the evaluated phase from `reputation_states`; the age-based stand-in answers
only for a number without a stored state."""

from __future__ import annotations

from datetime import timedelta

from libs.db.engine import create_engine, session_factory
from libs.seedwork.clock import SystemClock
from libs.seedwork.shared_kernel import ConnectionState, Provider, Purpose
from reputation_service.application.register_instance import RegisterInstance, RegisterInstanceHandler
from reputation_service.application.reputation_policy import OrganizationPolicies
from reputation_service.application.reputation_updates import ReputationUpdater
from reputation_service.application.window_counts import CountingPolicy, WindowCountsReader
from reputation_service.domain.instance import Instance
from reputation_service.domain.warmup import WarmupPhase
from reputation_service.infrastructure.age_phase_source import AgePhaseSource
from reputation_service.infrastructure.proto_mapping import event_to_proto
from reputation_service.infrastructure.stored_phase_source import StoredPhaseSource
from reputation_service.infrastructure.tables import messaging
from reputation_service.infrastructure.unit_of_work import SqlAlchemyReputationUnitOfWork


async def test_the_planner_reads_the_stored_phase_and_falls_back_to_age_without_one(migrated_database):
    engine = create_engine(migrated_database("reputation_service"))
    clock = SystemClock()

    def uow() -> SqlAlchemyReputationUnitOfWork:
        return SqlAlchemyReputationUnitOfWork(
            session_factory(engine), tables=messaging, to_message=event_to_proto, clock=clock
        )

    reader = WindowCountsReader(
        clock, CountingPolicy(minute_horizon=timedelta(days=8), ack_timeout=timedelta(minutes=15))
    )
    policies = OrganizationPolicies.from_overrides({}, {"org-warm": {"initial_phase": "WARMING"}})
    register = RegisterInstanceHandler(uow, clock, ReputationUpdater(clock, policies, reader))
    try:
        warming = await register(
            RegisterInstance(
                organization_id="org-warm",
                display_name="Sales",
                provider=Provider.WAHA,
                provider_instance_ref="warm-1",
                phone="5511987654321",
                purposes=frozenset({Purpose.WARMUP}),
                connection_state=ConnectionState.CONNECTED,
            )
        )
        unknown = Instance.register(
            organization_id="org-warm",
            display_name="Old",
            provider=Provider.WAHA,
            provider_instance_ref="old-1",
            phone="5511987654322",
            purposes=frozenset({Purpose.WARMUP}),
            connection_state=ConnectionState.CONNECTED,
            now=clock.now(),
        )
        phases = StoredPhaseSource(session_factory(engine), AgePhaseSource(newborn_days=7))

        assert await phases.phase_of(warming, clock.now()) is WarmupPhase.WARMING  # the age alone: NEWBORN
        assert await phases.phase_of(unknown, clock.now()) is WarmupPhase.NEWBORN
        assert await phases.phase_of(unknown, clock.now() + timedelta(days=8)) is WarmupPhase.STABLE
    finally:
        await engine.dispose()
