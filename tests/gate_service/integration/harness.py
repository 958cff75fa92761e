"""A running Gate for integration tests: real PostgreSQL, Redis and JetStream, gRPC on a free port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from gate_service.bootstrap import Gate, assemble
from gate_service.config import GateSettings
from libs.rpc.server import GrpcServer
from libs.seedwork.clock import Clock
from libs.seedwork.ids import new_id
from libs.testing.jetstream import publish, simulator_instance_registered, stored_events
from libs.testing.services import acting_channel, new_service_token
from tests.conftest import NATS_URL, REDIS_URL
from whatlead.common.v1 import common_pb2
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc

# Generous caps so tests reach the paths they aim at; the slot test sets its own daily cap.
LOOSE_POLICIES = json.dumps(
    {
        "INTERACTING": {"per_minute": 0, "per_hour": 0, "per_day": 10, "min_interval_seconds": 0},
        "STABLE": {"per_minute": 0, "per_hour": 0, "per_day": 1000, "min_interval_seconds": 0},
    }
)


@dataclass
class RunningGate:
    app: Gate
    stub: gate_pb2_grpc.GateServiceAsyncStub
    settings: GateSettings
    channel: grpc.aio.Channel  # the stub's, for calls no stub would make (raw bytes)


@asynccontextmanager
async def running_gate(
    database_url: str,
    subject_root: str,
    redis_prefix: str,
    *,
    clock: Clock | None = None,
    **overrides: object,
) -> AsyncIterator[RunningGate]:
    settings = GateSettings.model_validate(
        {
            "database_url": database_url,
            "nats_url": NATS_URL,
            "subject_root": subject_root,
            "redis_url": REDIS_URL,
            "redis_key_prefix": f"{redis_prefix}gate:{new_id()[-8:]}:",
            "grpc_port": 0,
            "migrate_on_start": False,
            "phase_policies": LOOSE_POLICIES,
            "contact_min_gap_seconds": 0,
            "contact_hourly_cap": 0,
            "consumer_durable_prefix": f"gate-{new_id()[-12:]}",
            "scheduler_interval_seconds": 0.05,
            "service_token": new_service_token(),
            **overrides,
        }
    )
    app = await assemble(settings, clock=clock)
    for consumer in app.consumers:
        consumer._fetch_timeout = 0.2
    parts = app.parts()
    server = GrpcServer(
        parts.bindings,
        host="127.0.0.1",
        port=0,
        max_receive_message_bytes=settings.grpc_max_receive_bytes,
        outages=parts.outages,
        authenticator=parts.authenticator,
    )
    port = await server.start()
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(worker(stop)) for worker in parts.workers]
    assert parts.authenticator is not None
    channel = acting_channel(f"127.0.0.1:{port}", parts.authenticator, settings.service_credential())
    try:
        yield RunningGate(app, gate_pb2_grpc.GateServiceStub(channel), settings, channel)
    finally:
        stop.set()
        await channel.close()
        await server.stop(0)
        await asyncio.wait(tasks, timeout=5)
        for task in tasks:
            task.cancel()
        await app.close()


ALL_PURPOSES = (common_pb2.PURPOSE_DISPATCH, common_pb2.PURPOSE_WARMUP, common_pb2.PURPOSE_SCHEDULE)


async def register_instances(
    js: Any, subject_root: str, gate: RunningGate, organization_id: str, n: int, phones: tuple[str, ...] = ()
) -> list[str]:
    """Announce connected instances as the reputation service does (with `phones`, one each, in order);
    wait until the Gate knows them."""
    from libs.testing.waiting import eventually

    ids = [new_id() for _ in range(n)]
    for i, instance_id in enumerate(ids):
        await publish(
            js,
            subject_root,
            simulator_instance_registered(
                organization_id,
                instance_id,
                provider_instance_ref=f"sim-{instance_id[-8:]}",
                purposes=ALL_PURPOSES,
                **({"phone": phones[i]} if i < len(phones) else {}),
            ),
        )

    async def known() -> bool:
        return all(i in gate.app.projection.instances for i in ids)

    await eventually(known, timeout=10)
    return ids


def text_request(
    organization_id: str, phone: str, text: str = "hello", key: str = "", **fields: Any
) -> gate_pb2.SubmitIntentRequest:
    return gate_pb2.SubmitIntentRequest(
        organization_id=organization_id,
        idempotency_key=key,
        target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value=phone),
        type=common_pb2.MESSAGE_TYPE_TEXT,
        purpose=common_pb2.PURPOSE_DISPATCH,
        payload=common_pb2.MessagePayload(text=common_pb2.TextPayload(text=text)),
        **fields,
    )


async def gate_events(js: Any, subject_root: str, suffix: str, intent_ids: set[str]) -> list[Any]:
    """Events of the given intents stored on one gate subject."""
    stored: list[Any] = await stored_events(js, subject_root, "gate", subject_suffix=suffix, wait=0.3)
    return [event for event in stored if event.meta.aggregate_id in intent_ids]
