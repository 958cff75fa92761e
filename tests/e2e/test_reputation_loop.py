"""The reputation loop closed, with the processes `make run` starts: the registry and reputation, the Gate,
the Executor and the gateway as `python -m <service>`, the provider simulator posting its receipts to the
gateway, real PostgreSQL, Redis and JetStream.

Two numbers of one organization. The simulator answers 463 to A's first send: within seconds the Gate's
next decisions avoid A (its verdict says COOLDOWN_ACTIVE) and go through B; once the cooldown ends, A is
chosen again for its own contact (the conversation it holds comes back to it; new contacts rank the
still-DEGRADED A under the HEALTHY B, by design). Then A is banned (the provider's ban, as the gateway
publishes it): A is never chosen again, not even for its own contact.

The organization's time-lock ladder is seconds long (its own thresholds), so the test waits a cooldown
out. The simulator reports its time-lock with WAHA's six-hour end (in `session.status`, and to the
Executor's health probes), which would rightly keep A cooling for six hours: the session's webhooks carry
messages and receipts only, and the probes are off."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from libs.provider_simulator import run_simulator
from libs.provider_simulator.session_webhook import apply_session_webhook
from libs.rpc.client import open_channel
from libs.rpc.convert import to_timestamp
from libs.seedwork.ids import new_id
from libs.testing.jetstream import directory_key, publish
from libs.webhooks import webhook_secret
from tests.conftest import NATS_URL, REDIS_URL
from tests.executor_service.integration.harness import own_streams
from tests.sending_path import (
    NO_LIMITS,
    SIMULATOR_API_KEY,
    ServiceProcess,
    consumed,
    executor,
    free_port,
    gate,
    reputation,
)
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import provider_events_pb2
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

ORG = "org-reputation-loop"
COOLDOWN_SECONDS = 8  # the organization's first time-lock cooldown
PT = provider_events_pb2


class Client:
    def __init__(self, gate_stub: gate_pb2_grpc.GateServiceAsyncStub) -> None:
        self._gate = gate_stub
        self._n = 0

    async def submit(self, target: str | None = None) -> gate_pb2.SubmitIntentResponse:
        self._n += 1
        return await self._gate.SubmitIntent(
            gate_pb2.SubmitIntentRequest(
                organization_id=ORG,
                idempotency_key=f"loop-{self._n}-{new_id()}",
                target=common_pb2.Target(
                    kind=common_pb2.TARGET_KIND_PHONE, value=target or f"55119{self._n:08d}"
                ),
                type=common_pb2.MESSAGE_TYPE_TEXT,
                purpose=common_pb2.PURPOSE_DISPATCH,
                payload=common_pb2.MessagePayload(text=common_pb2.TextPayload(text=f"message {self._n}")),
            ),
            timeout=10,
        )


def verdict_of(response: gate_pb2.SubmitIntentResponse, instance_id: str) -> gate_pb2.CandidateVerdict | None:
    return next((c for c in response.decision.candidates if c.instance_id == instance_id), None)


def refused_for(response: gate_pb2.SubmitIntentResponse, instance_id: str, reason: int) -> bool:
    """The decision refused `instance_id` for `reason`, as a candidate or in the excluded counts."""
    verdict = verdict_of(response, instance_id)
    if verdict is not None:
        return verdict.verdict != gate_pb2.VERDICT_ALLOW and verdict.reason == reason
    return any(e.reason == reason and e.instances for e in response.decision.excluded)


async def test_a_463_cools_one_of_two_numbers_until_its_cooldown_ends_and_a_ban_retires_it(
    migrated_database, jetstream, subject_root, redis_prefix, redis_client
):
    logs = Path(tempfile.mkdtemp(prefix="wl-reputation-loop-"))
    async with own_streams(jetstream, subject_root) as root, run_simulator(api_key=SIMULATOR_API_KEY) as sim:
        key = await directory_key(jetstream, root, ORG)  # the organization's key, as ops would put it
        registry = reputation(
            database_url=migrated_database("reputation_service"),
            nats_url=NATS_URL,
            root=root,
            log=logs / "reputation.log",
            organization_thresholds=json.dumps(
                {
                    ORG: {
                        "initial_phase": "STABLE",
                        "timelock_cooldowns": [COOLDOWN_SECONDS, 2 * COOLDOWN_SECONDS],
                    }
                }
            ),
            evaluation_debounce_seconds="1",
            evaluation_poll_seconds="0.2",
            reputation_pass_interval_seconds="1",
        )
        registry.start()
        await registry.ready()
        the_gate = gate(
            database_url=migrated_database("gate_service"),
            nats_url=NATS_URL,
            root=root,
            redis_url=REDIS_URL,
            redis_prefix=f"{redis_prefix}reputation-loop:",
            log=logs / "gate.log",
            reputation_addr=f"127.0.0.1:{registry.grpc_port}",
            phase_policies=NO_LIMITS,
        )
        the_executor = executor(
            database_url=migrated_database("executor_service"),
            nats_url=NATS_URL,
            root=root,
            simulator_url=sim.base_url,
            log=logs / "executor.log",
            probe_interval_seconds="0",
        )
        the_gateway = gateway(nats_url=NATS_URL, root=root, log=logs / "gateway.log")
        the_gate.start()
        the_executor.start()
        the_gateway.start()
        processes = (registry, the_gate, the_executor, the_gateway)
        try:
            await asyncio.gather(the_gate.ready(), the_executor.ready(), gateway_ready(the_gateway))
            await run_the_loop(sim, root, jetstream, key, registry.grpc_port, the_gate, the_gateway)
        except BaseException:
            print("\n".join(f"--- {p.module}\n{p.tail()}" for p in processes))
            raise
        finally:
            await asyncio.gather(*(p.stop() for p in processes))


MASTER_KEY = "reputation-loop-master-key-0123456789abcdef"


def gateway(*, nats_url: str, root: str, log: Path) -> ServiceProcess:
    port = free_port()
    env = {
        "GATEWAY_NATS_URL": nats_url,
        "GATEWAY_SUBJECT_ROOT": root,
        "GATEWAY_HTTP_PORT": str(port),
        "GATEWAY_WEBHOOK_MASTER_KEY": MASTER_KEY,
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    return ServiceProcess("gateway", env, port, log)


def gateway_url(process: ServiceProcess) -> str:
    return f"http://127.0.0.1:{process.grpc_port}"  # its HTTP port: the gateway serves no gRPC


async def gateway_ready(process: ServiceProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            assert process.process is not None and process.process.poll() is None, process.tail()
            try:
                async with http.get(gateway_url(process) + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, process.tail()
            await asyncio.sleep(0.1)


async def run_the_loop(sim, root: str, js, key: str, registry_port: int, the_gate, the_gateway) -> None:
    async with (
        open_channel(f"127.0.0.1:{registry_port}", credential=key) as registry_channel,
        open_channel(f"127.0.0.1:{the_gate.grpc_port}", credential=key) as gate_channel,
    ):
        registry = reputation_pb2_grpc.ReputationServiceStub(registry_channel)
        client = Client(gate_pb2_grpc.GateServiceStub(gate_channel))

        async def register(ref: str) -> str:
            reply = await registry.RegisterInstance(
                reputation_pb2.RegisterInstanceRequest(
                    organization_id=ORG,
                    display_name=ref,
                    provider=common_pb2.PROVIDER_SIMULATOR,
                    provider_instance_ref=ref,
                    phone="5511955554444",
                    purposes=[common_pb2.PURPOSE_DISPATCH],
                    connection_state=common_pb2.CONNECTION_STATE_CONNECTED,
                )
            )
            # Its messages' receipts go to the gateway, signed as the gateway expects.
            await apply_session_webhook(
                sim.base_url,
                SIMULATOR_API_KEY,
                ref,
                url=f"{gateway_url(the_gateway)}/webhooks/simulator/{reply.instance.id}",
                secret=webhook_secret(MASTER_KEY.encode(), reply.instance.id),
                events=("message", "message.ack"),
            )
            return reply.instance.id

        sim.configure_session("loop-a", timelock_next=1)  # A's first send: error 463
        a, b = await register("loop-a"), await register("loop-b")
        await consumed(js, root, "reputation", the_gate.env["GATE_CONSUMER_DURABLE_PREFIX"] + "-reputation")

        # Round robin between two equal numbers: the first intent A takes is the one that meets the 463.
        # Its contact becomes A's (sticky): A's own conversation.
        contact_of_a = ""
        deadline = time.monotonic() + 20
        while not contact_of_a:
            assert time.monotonic() < deadline, "A was never chosen"
            response = await client.submit()
            if response.decision.chosen_instance_id == a:
                contact_of_a = response.intent.target.value
                chosen_a_at = time.monotonic()
            await asyncio.sleep(0.05)

        # Within seconds the Gate's decisions avoid A, and go through B.
        while True:
            response = await client.submit()
            if refused_for(response, a, gate_pb2.DECISION_REASON_COOLDOWN_ACTIVE):
                avoided_after = time.monotonic() - chosen_a_at
                break
            assert time.monotonic() - chosen_a_at < 10, response.decision
            await asyncio.sleep(0.05)
        assert response.decision.chosen_instance_id == b
        for _ in range(5):
            response = await client.submit()
            assert response.decision.chosen_instance_id == b
            assert refused_for(response, a, gate_pb2.DECISION_REASON_COOLDOWN_ACTIVE)
        explained = await registry.GetReputation(
            reputation_pb2.GetReputationRequest(organization_id=ORG, instance_id=a)
        )
        reputation_of_a = explained.reputation
        assert reputation_of_a.cooldown_reason == reputation_pb2.COOLDOWN_REASON_REACHOUT_TIMELOCK
        cooldown = explained.explanation.cooldown
        assert cooldown.restriction_kind == common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK
        assert (
            cooldown.until.ToDatetime() - cooldown.started_at.ToDatetime()
        ).total_seconds() == COOLDOWN_SECONDS
        cooldown_ends = reputation_of_a.cooldown_until.ToDatetime(tzinfo=UTC)

        # Once the cooldown ends, A is chosen again: its own contact's conversation comes back to it.
        await asyncio.sleep(max(0.0, (cooldown_ends - datetime.now(UTC)).total_seconds()))
        while True:
            response = await client.submit(contact_of_a)
            if response.decision.chosen_instance_id == a:
                chosen_again_after = (datetime.now(UTC) - cooldown_ends).total_seconds()
                break
            assert (datetime.now(UTC) - cooldown_ends).total_seconds() < 10, str(response.decision).replace(
                "\n", " "
            )
            await asyncio.sleep(0.1)

        # A ban, as the gateway publishes the provider's webhook: A is never chosen again.
        sim.ban("loop-a")
        banned_at = time.monotonic()
        await publish(
            js,
            root,
            PT.ProviderEventReceived(
                meta=common_pb2.EventMeta(event_id=new_id(), occurred_at=to_timestamp(datetime.now(UTC))),
                type=PT.PROVIDER_EVENT_TYPE_INSTANCE_BANNED,
                provider=common_pb2.PROVIDER_SIMULATOR,
                instance_id=a,
                provider_instance_ref="loop-a",
                occurred_at=to_timestamp(datetime.now(UTC)),
                origin=PT.PROVIDER_EVENT_ORIGIN_WEBHOOK,
                restriction_kind=common_pb2.RESTRICTION_KIND_PERMANENT_BAN,
            ),
        )
        # The ban reaches the Gate two ways: the registry's connection state (BANNED: refused as
        # INSTANCE_DISCONNECTED, ADR 0049) and the reputation (UNHEALTHY); whichever lands first retires A.
        retired = (
            gate_pb2.DECISION_REASON_INSTANCE_DISCONNECTED,
            gate_pb2.DECISION_REASON_INSTANCE_UNHEALTHY,
        )
        while True:
            response = await client.submit(contact_of_a)
            if any(refused_for(response, a, reason) for reason in retired):
                retired_after = time.monotonic() - banned_at
                break
            assert time.monotonic() - banned_at < 10, response.decision
            await asyncio.sleep(0.05)
        assert response.decision.chosen_instance_id == b, response
        # Never again: not for its contact, not for anyone, not after a cooldown's length.
        later = time.monotonic() + COOLDOWN_SECONDS + 2
        chosen = set()
        while time.monotonic() < later:
            for target in (contact_of_a, None):
                response = await client.submit(target)
                chosen.add(response.decision.chosen_instance_id)
            await asyncio.sleep(0.5)
        assert chosen == {b}

        of_b = await registry.GetReputation(
            reputation_pb2.GetReputationRequest(organization_id=ORG, instance_id=b)
        )
        # B carried the traffic and its receipts came back: unharmed by A's trouble.
        assert of_b.reputation.health == reputation_pb2.HEALTH_STATUS_HEALTHY, of_b
        print(
            f"\n463 -> the Gate avoids A: {avoided_after:.2f} s after A was chosen for the send that met it"
            f"\ncooldown end -> A chosen again: {chosen_again_after:.2f} s"
            f"\nban published -> the Gate refuses A: {retired_after:.2f} s"
        )
