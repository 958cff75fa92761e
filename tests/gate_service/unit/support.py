"""Builders for the Gate's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gate_service.application.decide import DecisionService
from gate_service.application.record_execution import (
    ExecutionReport,
    MessageFailedReport,
    MessageSentReport,
    RecordExecutionReports,
    RecordExecutionReportsHandler,
)
from gate_service.domain.decision import DecisionRecord
from gate_service.domain.gate import DispatchGate
from gate_service.domain.intent import IntentOrigin, MessageIntent, TextPayload
from gate_service.domain.policies import GatePolicies, HealthStatus, WarmupPhase
from gate_service.domain.ports import GateUnitOfWork
from gate_service.domain.projection import GateProjection, InstanceState
from libs.seedwork.clock import FakeClock
from libs.seedwork.ids import new_id
from libs.seedwork.shared_kernel import ConnectionState, MessageType, Provider, Purpose, TargetKind
from tests.gate_service.unit.fakes import FakeRateStore

ORG = "org-acme"
PHONE = "5511987654321"


def new_intent(clock: FakeClock, **overrides: Any) -> MessageIntent:
    fields: dict[str, Any] = dict(
        organization_id=ORG,
        target_kind=TargetKind.PHONE,
        target_value="+55 11 98765-4321",
        type=MessageType.TEXT,
        purpose=Purpose.DISPATCH,
        origin=IntentOrigin.API,
        campaign_id="",
        payload=TextPayload("hello"),
        idempotency_key="",
        not_before=None,
        expires_at=None,
        now=clock.now(),
    )
    fields.update(overrides)
    return MessageIntent.create(**fields)


def instance(
    *,
    organization_id: str = ORG,
    purposes: frozenset[Purpose] = frozenset(Purpose),
    connection: ConnectionState = ConnectionState.CONNECTED,
    instance_id: str | None = None,
    version: int = 1,
    phone: str = "",
) -> InstanceState:
    return InstanceState(
        instance_id=instance_id or new_id(),
        organization_id=organization_id,
        provider=Provider.WAHA,
        provider_instance_ref="ref-" + (instance_id or new_id())[-6:],
        purposes=purposes,
        connection_state=connection,
        instance_version=version,
        phone=phone,
    )


class World:
    """A gate with its projection, a fake rate store and a fake clock."""

    def __init__(self, policies: GatePolicies | None = None) -> None:
        self.clock = FakeClock(datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC))
        self.policies = policies or GatePolicies()
        self.projection = GateProjection(self.policies)
        self.rates = FakeRateStore()
        self.gate = DispatchGate(self.policies)
        self.decider = DecisionService(self.gate, self.projection, self.rates, self.clock)

    def add(self, state: InstanceState | None = None, **reputation: Any) -> InstanceState:
        state = state or instance()
        self.projection.upsert_instance(state, self.clock.now())
        if reputation:
            self.reputation(state.instance_id, **reputation)
        return self.projection.instances[state.instance_id]

    def reputation(
        self,
        instance_id: str,
        *,
        score: int = 80,
        health: HealthStatus = HealthStatus.HEALTHY,
        phase: WarmupPhase = WarmupPhase.STABLE,
        cooldown: timedelta | None = None,
    ) -> None:
        version = self.projection.instances[instance_id].reputation_version + 1
        self.projection.apply_reputation(
            instance_id,
            score=score,
            health=health,
            phase=phase,
            cooldown_until=self.clock.now() + cooldown if cooldown else None,
            version=version,
            now=self.clock.now(),
        )

    async def decide(self, intent: MessageIntent) -> DecisionRecord:
        return (await self.decider.decide(intent)).record

    def intent(self, **overrides: object) -> MessageIntent:
        return new_intent(self.clock, **overrides)


def sent(w: World, intent_id: str, organization_id: str = ORG) -> MessageSentReport:
    """The Executor's report that the intent's message went out, as its consumer hands it over."""
    return MessageSentReport(
        organization_id=organization_id,
        intent_id=intent_id,
        instance_id="i",
        job_id="j",
        provider_message_id="m",
        sent_at=w.clock.now(),
    )


def failed(w: World, intent_id: str, organization_id: str = ORG) -> MessageFailedReport:
    """The Executor's report of a final, permanent failure."""
    return MessageFailedReport(
        organization_id=organization_id,
        intent_id=intent_id,
        instance_id="i",
        job_id="j",
        error_class="PERMANENT",
        error_code="not_on_whatsapp",
        error_message="",
        failed_at=w.clock.now(),
    )


async def record(uow: GateUnitOfWork, *reports: ExecutionReport) -> list[bool]:
    return await RecordExecutionReportsHandler()(uow, RecordExecutionReports(reports))
