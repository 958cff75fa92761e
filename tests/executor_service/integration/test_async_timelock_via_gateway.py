"""A 463 that only a webhook reports (NOWEB, Evolution): the send is answered 201/PENDING, then an ERROR
ack with error.code 463 reaches the real gateway over HTTP (signed with the instance's webhook secret),
the gateway publishes it, and the real executor fails the job RESTRICTED for good, publishes the
restriction for Reputation, never sends the message again, and holds the instance's next job."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import select

from executor_service.infrastructure.tables import jobs
from gateway.bootstrap import build, webhook_adapters
from gateway.config import GatewaySettings
from gateway.entrypoints.server import server_config
from libs.provider_simulator import apply_session_webhook, run_simulator
from libs.seedwork.ids import new_id
from libs.testing.jetstream import publish, stored_events
from libs.testing.waiting import eventually
from libs.webhooks import webhook_secret
from tests.conftest import NATS_URL
from tests.executor_service.integration.harness import (
    API_KEY,
    approved,
    instance_registered,
    job_row,
    last_error,
    own_streams,
    projected,
    running,
    settings,
)
from tests.sending_path import free_port
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import executor_events_pb2, provider_events_pb2

LEASE = 2.0
QUIET = 2 * LEASE + 1.0  # past the lease and several reconciler passes


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the test runner owns the process's signals


@contextlib.asynccontextmanager
async def gateway(root: str, master_key: str) -> AsyncIterator[str]:
    """The gateway app, built by its bootstrap with production's verifier and normalizer, served over
    HTTP on this event loop (the simulator posts real requests); yields its base URL."""
    config = GatewaySettings(
        nats_url=NATS_URL,
        subject_root=root,
        http_port=free_port(),
        webhook_master_key=SecretStr(master_key),
    )
    verifier, normalizer = webhook_adapters(config)
    parts = await build(config, verifier=verifier, normalizer=normalizer)
    server = _Server(server_config(config, parts))
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: _started(server), timeout=10)
        yield f"http://{config.http_host}:{config.http_port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=15)
        await parts.close()


async def _started(server: uvicorn.Server) -> bool:
    return server.started


@pytest.fixture
async def root(jetstream, subject_root) -> AsyncIterator[str]:
    async with own_streams(jetstream, subject_root) as own:
        yield own


async def test_a_463_reported_only_by_webhook_fails_the_job_restricted_never_resent_and_holds_the_next(
    migrated_database, jetstream, root
):
    master_key = secrets.token_hex(32)
    organization, instance = f"org-{new_id()[-12:]}", new_id()
    session = f"noweb-{instance[-8:].lower()}"
    async with (
        run_simulator(api_key=API_KEY) as simulator,
        gateway(root, master_key) as gateway_url,
    ):
        # The session's webhooks go to the gateway, signed with the secret the registry hands out for it.
        await apply_session_webhook(
            simulator.base_url,
            API_KEY,
            session,
            url=f"{gateway_url}/webhooks/waha/{instance}",
            secret=webhook_secret(master_key.encode(), instance),
        )
        simulator.configure_session(session, timelock_ack_next=1)
        config = settings(
            migrated_database("executor_service"),
            root,
            simulator.base_url,
            waha_url=simulator.base_url,
            waha_api_key=API_KEY,
            lease_seconds=LEASE,
            provider_timeout_seconds=1.5,
            probe_interval_seconds=0,  # only the webhook may tell the executor about the 463
        )
        async with running(config) as executor:
            await publish(
                jetstream,
                root,
                instance_registered(
                    organization,
                    instance,
                    session=session,
                    provider=common_pb2.PROVIDER_WAHA,
                    version="2026.4.3",
                    engine=common_pb2.PROVIDER_ENGINE_NOWEB,
                ),
            )
            await projected(executor, instance)
            first = approved(
                organization,
                session=session,
                instance_id=instance,
                phone="5511922220001",
                provider=common_pb2.PROVIDER_WAHA,
            )
            await publish(jetstream, root, first)

            async def failed() -> bool:
                async with executor.infra.sessions() as db:
                    status = await db.scalar(select(jobs.c.status).where(jobs.c.intent_id == first.intent_id))
                return status == "FAILED"

            await eventually(failed, timeout=20)
            await asyncio.sleep(QUIET)  # anything that would send it again has had its chance
            row = await job_row(executor, first.intent_id)

            second = approved(
                organization,
                session=session,
                instance_id=instance,
                phone="5511922220002",
                provider=common_pb2.PROVIDER_WAHA,
            )
            await publish(jetstream, root, second)

            async def held() -> bool:
                async with executor.infra.sessions() as db:
                    found = await db.scalar(
                        select(jobs.c.held_by_pause).where(jobs.c.intent_id == second.intent_id)
                    )
                return found is True

            await eventually(held, timeout=15)
            await asyncio.sleep(1.0)
            next_job = await job_row(executor, second.intent_id)
            executor_events = await stored_events(jetstream, root, "executor")
            gateway_events = [
                e
                for e in await stored_events(jetstream, root, "gateway")
                if isinstance(e, provider_events_pb2.ProviderEventReceived)
            ]

    assert row.status == "FAILED"
    error = last_error(row)
    assert (error["class"], error["code"], error["restriction"]) == (
        "RESTRICTED",
        "reachout_timelock",
        "REACHOUT_TIMELOCK",
    )
    assert row.attempts == 1
    # Reputation cools the number down from this event.
    [message_failed] = [
        e
        for e in executor_events
        if isinstance(e, executor_events_pb2.MessageFailed) and e.intent_id == first.intent_id
    ]
    assert message_failed.error.restriction_kind == common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK
    # What the gateway read from the provider's webhooks: the ERROR ack with 463 (and the session's
    # time-lock, from its status).
    failures = [e for e in gateway_events if _is(e, provider_events_pb2.PROVIDER_EVENT_TYPE_MESSAGE_FAILED)]
    assert [(e.instance_id, e.error_code, e.restriction_kind) for e in failures] == [
        (instance, "463", common_pb2.RESTRICTION_KIND_REACHOUT_TIMELOCK)
    ]
    assert failures[0].provider_message_id == row.provider_message_id
    assert any(
        e.instance_id == instance
        for e in gateway_events
        if _is(e, provider_events_pb2.PROVIDER_EVENT_TYPE_REACHOUT_TIMELOCKED)
    )
    # Exactly one send, never a second; the next job of the time-locked instance is held, not sent.
    [entry] = simulator.ledger.entries
    assert entry.client_id == row.client_message_id is not None
    assert simulator.ledger.duplicates() == {}
    assert (next_job.status, next_job.held_by_pause, next_job.attempts) == ("PENDING", True, 0)


def _is(event: provider_events_pb2.ProviderEventReceived, kind: int) -> bool:
    return event.type == kind
