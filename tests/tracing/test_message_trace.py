"""One message as one trace, with the spans kept in memory: the Gate's SubmitIntent and its decision, the
relay's publication, the Executor's consumption and provider call, the simulator's webhook through the
real gateway, and Reputation's consumption of what the Executor and the gateway published; each span a
child of what caused it.

Reputation, the Gate and the Executor are served in this event loop as their bootstraps wire them, the
gateway over HTTP, the provider simulator answering the sends and posting the webhooks (carrying the
traceparent of the send they report on, as only the simulator does)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from executor_service.bootstrap import build as build_executor
from gate_service.bootstrap import build as build_gate
from gate_service.config import GateSettings
from libs.provider_simulator import apply_session_webhook, run_simulator
from libs.seedwork.ids import new_id
from libs.testing.services import new_service_token, running_service
from libs.testing.waiting import eventually
from libs.webhooks import webhook_secret
from reputation_service.bootstrap import build as build_reputation
from reputation_service.config import ReputationSettings
from tests.conftest import NATS_URL, REDIS_URL
from tests.executor_service.integration.harness import own_streams
from tests.executor_service.integration.harness import settings as executor_settings
from tests.executor_service.integration.test_async_timelock_via_gateway import gateway
from tests.fuzz.system import OPEN_POLICIES, valid_registration, valid_submit
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc
from whatlead.reputation.v1 import reputation_pb2_grpc

SIMULATOR_KEY = "trace-simulator-key"


@pytest.fixture
async def root(jetstream: Any, subject_root: str) -> AsyncIterator[str]:
    async with own_streams(jetstream, subject_root) as own:
        yield own


def _named(spans: Sequence[ReadableSpan], name: str, **attributes: Any) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if s.name == name and all((s.attributes or {}).get(k) == v for k, v in attributes.items())
    ]


def _child_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.parent is not None and parent.context is not None and child.context is not None
    return (child.parent.trace_id, child.parent.span_id) == (parent.context.trace_id, parent.context.span_id)


async def test_one_message_reads_as_one_trace_from_submit_to_reputation(
    spans: InMemorySpanExporter, migrated_database: Any, root: str, redis_prefix: str, redis_client: Any
) -> None:
    master_key = secrets.token_hex(32)
    organization, session = f"org-{new_id()[-12:]}", f"trace-{new_id()[-8:].lower()}"
    common: dict[str, Any] = dict(
        nats_url=NATS_URL,
        subject_root=root,
        migrate_on_start=False,
        grpc_port=0,
        service_token=new_service_token(),
    )
    async with AsyncExitStack() as stack:
        simulator = await stack.enter_async_context(run_simulator(api_key=SIMULATOR_KEY))
        gateway_url = await stack.enter_async_context(gateway(root, master_key))
        reputation = await stack.enter_async_context(
            running_service(
                build_reputation,
                ReputationSettings(
                    database_url=migrated_database("reputation_service"),
                    thresholds={"initial_phase": "INTERACTING"},
                    **common,
                ),
            )
        )
        gate = await stack.enter_async_context(
            running_service(
                build_gate,
                GateSettings.model_validate(
                    {
                        "database_url": migrated_database("gate_service"),
                        **common,
                        "redis_url": REDIS_URL,
                        "redis_key_prefix": f"{redis_prefix}trace:{new_id()[-8:]}:",
                        "reputation_addr": reputation.address,
                        "phase_policies": OPEN_POLICIES,
                        "contact_min_gap_seconds": 0,
                        "contact_hourly_cap": 0,
                        "consumer_durable_prefix": f"gate-{root}",
                    }
                ),
            )
        )
        await stack.enter_async_context(
            running_service(
                build_executor,
                executor_settings(
                    migrated_database("executor_service"),
                    root,
                    simulator.base_url,
                    simulator_api_key=SIMULATOR_KEY,
                    migrate_on_start=False,
                    grpc_port=0,
                    service_token=common["service_token"],
                    probe_interval_seconds=0,
                ),
            )
        )
        registry = reputation_pb2_grpc.ReputationServiceStub(reputation.channel)
        instance = (await registry.RegisterInstance(valid_registration(organization, session))).instance.id
        # The session's webhooks go to the gateway, signed with the secret the registry hands out for it.
        await apply_session_webhook(
            simulator.base_url,
            SIMULATOR_KEY,
            session,
            url=f"{gateway_url}/webhooks/simulator/{instance}",
            secret=webhook_secret(master_key.encode(), instance),
        )
        # The service credential on a channel as every service opens it: the client's interceptors (its
        # credential's, filed for both kinds of call, and the trace's) take turns on one call.
        channel = gate.channel_with(gate.service_credential)
        stack.push_async_callback(channel.close)
        stub = gate_pb2_grpc.GateServiceStub(channel)

        answers: list[gate_pb2.SubmitIntentResponse] = []

        async def approved() -> bool:
            # The Gate approves once it has heard of the instance (the reputation stream); until then the
            # intent is queued, and a new key is tried.
            answers.append(await stub.SubmitIntent(valid_submit(organization, new_id()), timeout=10))
            return answers[-1].intent.status == gate_pb2.INTENT_STATUS_APPROVED

        await eventually(approved, timeout=30)
        intent_id = answers[-1].intent.id
        [decide] = _named(spans.get_finished_spans(), "gate decide", **{"whatlead.intent_id": intent_id})
        trace_id = decide.context.trace_id

        def in_trace() -> list[ReadableSpan]:
            return [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]

        async def reputation_heard_both() -> bool:
            mine = in_trace()
            return bool(
                _named(mine, "consume MessageSent", **{"whatlead.service": "reputation"})
                and _named(
                    mine,
                    "consume ProviderEventReceived",
                    **{"messaging.consumer.group.name": "reputation-provider-events"},
                )
            )

        await eventually(reputation_heard_both, timeout=30)
        mine = in_trace()

    submitted = _named(mine, "/whatlead.gate.v1.GateService/SubmitIntent")
    [call] = [s for s in submitted if s.kind is SpanKind.CLIENT]
    [submit] = [s for s in submitted if s.kind is SpanKind.SERVER]
    assert call.parent is None and _child_of(submit, call)  # the context went in the call's metadata
    assert _child_of(decide, submit)
    assert decide.attributes is not None and decide.attributes["whatlead.decision.outcome"] == "APPROVED"
    assert decide.attributes["whatlead.instance_id"] == instance

    [publish_approved] = _named(mine, "publish IntentApproved")
    assert publish_approved.kind is SpanKind.PRODUCER and _child_of(publish_approved, submit)

    [consume_approved] = _named(mine, "consume IntentApproved", **{"whatlead.service": "executor"})
    assert consume_approved.kind is SpanKind.CONSUMER and _child_of(consume_approved, publish_approved)

    [send] = _named(mine, "executor send")
    assert _child_of(send, consume_approved)
    [provider_call] = _named(mine, "provider call")
    assert provider_call.kind is SpanKind.CLIENT and _child_of(provider_call, send)

    [publish_sent] = _named(mine, "publish MessageSent")
    assert _child_of(publish_sent, consume_approved)
    [reputation_sent] = _named(mine, "consume MessageSent", **{"whatlead.service": "reputation"})
    assert _child_of(reputation_sent, publish_sent)

    webhooks = _named(mine, "webhook simulator")
    assert webhooks and all(w.kind is SpanKind.SERVER and _child_of(w, provider_call) for w in webhooks)
    signals = {"messaging.consumer.group.name": "reputation-provider-events"}
    reported = _named(mine, "consume ProviderEventReceived", **signals)
    assert reported and all(any(_child_of(r, w) for w in webhooks) for r in reported)

    # Ids of intents, instances and organizations; never the phone, the text or a key.
    everything = " ".join(str(dict(s.attributes or {})) for s in mine)
    request = valid_submit(organization, "x")
    assert request.target.value not in everything and request.payload.text.text not in everything
    assert SIMULATOR_KEY not in everything and master_key not in everything
