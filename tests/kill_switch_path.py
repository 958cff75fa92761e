"""The kill-switch's path, for its test and its bench: ops, the Gate and the Executor in this event loop
(each as its `__main__` wires it, behind real authentication), on their own databases, subject root and
Redis prefix, the Executor sending through the provider simulator, whose ledger says which calls reached
the provider and when.

A campaign is submitted through the Gate first (every intent APPROVED: no caps), then the Executor starts
and sends it; a pause is called on ops with an ADMIN key, as an operator would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from executor_service.bootstrap import Executor, assemble
from executor_service.config import ExecutorSettings
from gate_service.bootstrap import build as build_gate
from gate_service.config import GateSettings
from libs.messaging.key_directory import delete_key_directory
from libs.provider_simulator import LedgerEntry, run_simulator
from libs.providers.port import new_client_message_id
from libs.seedwork.access import Role
from libs.seedwork.ids import new_id
from libs.testing.services import RunningService, running_service
from ops_service.bootstrap import build as build_ops
from ops_service.config import OpsSettings
from tests.sending_path import NO_LIMITS, consumed, register_instances
from whatlead.common.v1 import common_pb2
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

SIMULATOR_API_KEY = "kill-switch-sim-key"
# The Executor's sending capacity here: each worker claims up to BATCH_SIZE jobs and sends them at once,
# so at most WORKERS * BATCH_SIZE provider calls are in flight at any moment.
WORKERS = 4
BATCH_SIZE = 8
SEND_LATENCY_MS = 20  # each provider call takes this long: a pause always meets calls in flight


def executor_settings(database_url: str, nats_url: str, root: str, simulator_url: str) -> ExecutorSettings:
    """As deployed (the kill-switch view's refresh is the default), sending through the simulator."""
    return ExecutorSettings(
        database_url=database_url,
        nats_url=nats_url,
        subject_root=root,
        grpc_port=0,
        migrate_on_start=False,
        simulator_url=simulator_url,
        simulator_api_key=SecretStr(SIMULATOR_API_KEY),
        workers=WORKERS,
        batch_size=BATCH_SIZE,
        poll_interval_seconds=0.05,
        lease_seconds=5.0,
        provider_timeout_seconds=2.0,
        probe_interval_seconds=0,
    )


def in_flight_bound(settings: ExecutorSettings) -> int:
    """The most provider calls one Executor has in flight: its workers' batches, all sent at once."""
    return settings.workers * settings.batch_size


@dataclass
class Paused:
    """One pause: when PauseExecution returned (epoch seconds), and the scope's calls so far."""

    returned_at: float
    calls_before: int


@dataclass
class KillSwitchPath:
    organization: str
    ops: RunningService
    gate: RunningService
    simulator: Any
    sessions: list[str]
    instance_ids: list[str]
    executor_settings: ExecutorSettings
    submitted: dict[str, str] = field(default_factory=dict)  # intent id → campaign id
    executor: Executor | None = None

    @property
    def bound(self) -> int:
        return in_flight_bound(self.executor_settings)

    def entries(self, in_scope: Callable[[LedgerEntry], bool] = lambda _: True) -> list[LedgerEntry]:
        return [entry for entry in self.simulator.ledger.entries if in_scope(entry)]

    def of_session(self, session: str) -> Callable[[LedgerEntry], bool]:
        return lambda entry: entry.session == session

    def of_campaign(self, campaign_id: str) -> Callable[[LedgerEntry], bool]:
        ids = {new_client_message_id(i) for i, c in self.submitted.items() if c == campaign_id}
        return lambda entry: entry.client_id in ids

    async def submit(self, count: int, *, campaign_id: str = "", concurrency: int = 32) -> None:
        """`count` intents through the Gate, every one APPROVED (no caps, connected instances)."""
        stub = gate_pb2_grpc.GateServiceStub(self.gate.channel)
        slots = asyncio.Semaphore(concurrency)
        run = new_id()[-8:]

        async def one(n: int) -> None:
            async with slots:
                response = await stub.SubmitIntent(
                    gate_pb2.SubmitIntentRequest(
                        organization_id=self.organization,
                        idempotency_key=f"{run}-{n}",
                        target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value=f"5511{n:09d}"),
                        type=common_pb2.MESSAGE_TYPE_TEXT,
                        purpose=common_pb2.PURPOSE_DISPATCH,
                        campaign_id=campaign_id,
                        payload=common_pb2.MessagePayload(text=common_pb2.TextPayload(text=f"hello {n}")),
                    ),
                    timeout=30,
                )
            assert response.intent.status == gate_pb2.INTENT_STATUS_APPROVED, response.intent
            self.submitted[response.intent.id] = campaign_id

        await asyncio.gather(*(one(n) for n in range(count)))

    async def _control(self, pause: bool, scope: ops_pb2.ControlScope.ValueType, scope_id: str) -> None:
        """PauseExecution or ResumeExecution with an ADMIN key of the organization."""
        key = self.ops.key(self.organization, Role.ADMIN)
        async with self.ops.channel_with(key) as channel:
            stub = ops_pb2_grpc.OpsServiceStub(channel)
            if pause:
                await stub.PauseExecution(
                    ops_pb2.PauseExecutionRequest(
                        organization_id=self.organization,
                        scope=scope,
                        scope_id=scope_id,
                        reason=ops_pb2.CONTROL_REASON_INCIDENT,
                    ),
                    timeout=10,
                )
            else:
                await stub.ResumeExecution(
                    ops_pb2.ResumeExecutionRequest(
                        organization_id=self.organization, scope=scope, scope_id=scope_id
                    ),
                    timeout=10,
                )

    async def pause(
        self,
        scope: ops_pb2.ControlScope.ValueType,
        scope_id: str,
        in_scope: Callable[[LedgerEntry], bool] = lambda _: True,
    ) -> Paused:
        await self._control(True, scope, scope_id)
        returned_at = time.time()
        return Paused(returned_at, len(self.entries(in_scope)))

    async def resume(self, scope: ops_pb2.ControlScope.ValueType, scope_id: str) -> None:
        await self._control(False, scope, scope_id)

    @asynccontextmanager
    async def executor_running(self) -> AsyncIterator[Executor]:
        """The Executor serving, with its consumers, workers, relay and reconciler."""
        assembled: list[Executor] = []

        async def build(config: ExecutorSettings) -> Any:
            assembled.append(await assemble(config))
            return assembled[0].parts()

        async with running_service(build, self.executor_settings):
            self.executor = assembled[0]
            try:
                yield assembled[0]
            finally:
                self.executor = None

    async def wait_for_calls(
        self, count: int, in_scope: Callable[[LedgerEntry], bool] = lambda _: True, timeout: float = 30
    ) -> None:
        deadline = time.monotonic() + timeout
        while len(self.entries(in_scope)) < count:
            assert time.monotonic() < deadline, f"{len(self.entries(in_scope))} calls, not {count}"
            await asyncio.sleep(0.005)


def calls_after(entries: Sequence[LedgerEntry], paused: Paused) -> list[LedgerEntry]:
    """The calls that reached the provider after the pause returned."""
    return [entry for entry in entries if entry.at > paused.returned_at]


@asynccontextmanager
async def kill_switch_path(
    *,
    js: Any,
    nats_url: str,
    redis_url: str,
    redis_prefix: str,
    root: str,
    database_urls: dict[str, str],
    sessions: int = 4,
) -> AsyncIterator[KillSwitchPath]:
    """Ops and the Gate serving (the Gate knowing the organization's `sessions` connected instances), the
    simulator answering; the Executor is started by `executor_running`."""
    organization = f"org-{new_id()[-12:]}"
    async with AsyncExitStack() as stack:
        stack.push_async_callback(delete_key_directory, js, root)  # ops creates the root's key directory
        simulator = await stack.enter_async_context(run_simulator(api_key=SIMULATOR_API_KEY))
        names = [f"ks-{n}-{new_id()[-8:]}" for n in range(sessions)]
        for name in names:
            simulator.configure_session(name, latency_ms=SEND_LATENCY_MS)
        ops = await stack.enter_async_context(
            running_service(
                build_ops,
                OpsSettings(
                    database_url=database_urls["ops"],
                    nats_url=nats_url,
                    subject_root=root,
                    grpc_port=0,
                    migrate_on_start=False,
                ),
            )
        )
        durable_prefix = f"ks-{new_id()[-12:]}"
        gate = await stack.enter_async_context(
            running_service(
                build_gate,
                GateSettings(
                    database_url=database_urls["gate"],
                    nats_url=nats_url,
                    subject_root=root,
                    grpc_port=0,
                    migrate_on_start=False,
                    redis_url=redis_url,
                    redis_key_prefix=f"{redis_prefix}ks:{new_id()[-8:]}:",
                    consumer_durable_prefix=durable_prefix,
                    phase_policies=NO_LIMITS,
                    contact_min_gap_seconds=0,
                    contact_hourly_cap=0,
                ),
            )
        )
        instance_ids = await register_instances(js, root, organization, names)
        await consumed(js, root, "reputation", f"{durable_prefix}-reputation")
        yield KillSwitchPath(
            organization,
            ops,
            gate,
            simulator,
            names,
            instance_ids,
            executor_settings(database_urls["executor"], nats_url, root, simulator.base_url),
        )
