"""Onboarding a number through its provider, with the real services: reputation served as in production
(PostgreSQL, JetStream) and the provider simulator (WAHA's API) in this process. Register → ConnectInstance
(the session is created at the simulator with its webhook pointed at the gateway, and the QR code comes
back) → WatchInstance shows it → the phone scans through the simulator's control route → the gateway's
canonical CONNECTION_CONNECTED arrives (published here: the gateway is not part of this test) → the stream
sends CONNECTED and ends OK. And: the status check catches a scan whose webhook never came; logout and
delete undo it at the provider; bad requests are INVALID_ARGUMENT."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import grpc
import pytest
from pydantic import SecretStr

from libs.provider_simulator import ProviderSimulator, run_simulator
from libs.rpc.convert import to_timestamp
from libs.seedwork.ids import new_id
from libs.testing.jetstream import publish
from libs.testing.services import running_service
from libs.testing.waiting import eventually
from libs.webhooks import webhook_secret
from reputation_service.bootstrap import build
from reputation_service.config import ReputationSettings
from tests.conftest import NATS_URL
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import provider_events_pb2 as pe
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

ORG = "org-onboarding"
SIM_KEY = "onboarding-sim-key"
MASTER_KEY = "a-webhook-master-key-for-onboarding-tests"
GATEWAY = "http://127.0.0.1:9"  # nobody listens: the simulator's webhooks go nowhere, the test feeds events
QR_REQUIRED = common_pb2.CONNECTION_STATE_QR_REQUIRED
CONNECTED = common_pb2.CONNECTION_STATE_CONNECTED


@pytest.fixture
async def simulator() -> AsyncIterator[ProviderSimulator]:
    async with run_simulator(api_key=SIM_KEY, qr_rotate_s=60.0, webhook_attempts=1) as sim:
        yield sim


def settings_for(
    simulator: ProviderSimulator, database: str, subject_root: str, **more: object
) -> ReputationSettings:
    return ReputationSettings(
        database_url=database,
        nats_url=NATS_URL,
        subject_root=subject_root,
        simulator_url=simulator.base_url,
        simulator_api_key=SecretStr(SIM_KEY),
        gateway_public_url=GATEWAY,
        webhook_master_key=SecretStr(MASTER_KEY),
        **more,  # type: ignore[arg-type]
    )


async def register(stub: Any, ref: str) -> str:
    reply = await stub.RegisterInstance(
        reputation_pb2.RegisterInstanceRequest(
            organization_id=ORG,
            display_name="Onboarding",
            provider=common_pb2.PROVIDER_SIMULATOR,
            provider_instance_ref=ref,
            phone="5511987654321",
            purposes=[common_pb2.PURPOSE_DISPATCH],
        )
    )
    return reply.instance.id


async def scan(simulator: ProviderSimulator, ref: str, code: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{simulator.base_url}/_sim/sessions/{ref}/scan",
            json={"code": code},
            headers={"X-Api-Key": SIM_KEY},
        ) as answer,
    ):
        assert answer.status == 200, await answer.text()


async def next_connection(watch: Any) -> reputation_pb2.InstanceConnection:
    """The stream's next message (generously waited for)."""
    answer = await asyncio.wait_for(watch.read(), 10)
    assert isinstance(answer, reputation_pb2.WatchInstanceResponse), answer
    return answer.connection


def connected_event(instance_id: str, ref: str) -> pe.ProviderEventReceived:
    now = datetime.now(UTC)
    return pe.ProviderEventReceived(
        # As the gateway publishes a webhook: it knows the instance, not its organization.
        meta=common_pb2.EventMeta(event_id=new_id(), occurred_at=to_timestamp(now)),
        type=pe.PROVIDER_EVENT_TYPE_CONNECTION_CONNECTED,
        provider=common_pb2.PROVIDER_SIMULATOR,
        instance_id=instance_id,
        provider_instance_ref=ref,
        occurred_at=to_timestamp(now),
        connection_state=CONNECTED,
        connection_reason="WORKING",
        origin=pe.PROVIDER_EVENT_ORIGIN_WEBHOOK,
    )


async def test_register_connect_scan_and_the_watch_ends_on_connected(
    simulator, migrated_database, subject_root, jetstream
):
    settings = settings_for(simulator, migrated_database("reputation_service"), subject_root)
    ref = f"phone-{new_id()[:8]}"
    async with running_service(build, settings) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        instance_id = await register(stub, ref)

        connected = await stub.ConnectInstance(
            reputation_pb2.ConnectInstanceRequest(organization_id=ORG, instance_id=instance_id)
        )
        assert connected.connection.state == QR_REQUIRED
        assert connected.connection.qr.code and connected.instance.connection_state == QR_REQUIRED
        # The session posts its webhooks to the gateway's route for this instance, with its own secret.
        session = simulator.sessions[ref]
        assert session.webhooks[0].url == f"{GATEWAY}/webhooks/simulator/{instance_id}"
        assert session.webhooks[0].hmac_key == webhook_secret(MASTER_KEY.encode(), instance_id)

        watch = stub.WatchInstance(
            reputation_pb2.WatchInstanceRequest(organization_id=ORG, instance_id=instance_id)
        )
        first = await next_connection(watch)
        assert first.state == QR_REQUIRED
        assert first.qr.code == connected.connection.qr.code

        await scan(simulator, ref, first.qr.code)
        await publish(jetstream, subject_root, connected_event(instance_id, ref))

        following = await next_connection(watch)
        assert following.state == CONNECTED
        assert following.reason == "WORKING"
        assert await asyncio.wait_for(watch.read(), 10) is grpc.aio.EOF
        assert await watch.code() == grpc.StatusCode.OK

        stored = await stub.GetInstance(
            reputation_pb2.GetInstanceRequest(organization_id=ORG, instance_id=instance_id)
        )
        assert stored.instance.connection_state == CONNECTED


async def test_the_status_check_catches_a_scan_whose_webhook_never_came(
    simulator, migrated_database, subject_root, jetstream
):
    settings = settings_for(
        simulator, migrated_database("reputation_service"), subject_root, status_check_interval_seconds=0.2
    )
    ref = f"phone-{new_id()[:8]}"
    async with running_service(build, settings) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        instance_id = await register(stub, ref)
        connected = await stub.ConnectInstance(
            reputation_pb2.ConnectInstanceRequest(organization_id=ORG, instance_id=instance_id)
        )
        watch = stub.WatchInstance(
            reputation_pb2.WatchInstanceRequest(organization_id=ORG, instance_id=instance_id)
        )
        assert (await next_connection(watch)).state == QR_REQUIRED

        await scan(simulator, ref, connected.connection.qr.code)

        assert (await next_connection(watch)).state == CONNECTED
        assert await asyncio.wait_for(watch.read(), 10) is grpc.aio.EOF


async def test_logout_and_delete_undo_it_at_the_provider_and_keep_the_instance(
    simulator, migrated_database, subject_root, jetstream
):
    settings = settings_for(simulator, migrated_database("reputation_service"), subject_root)
    ref = f"phone-{new_id()[:8]}"
    async with running_service(build, settings) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        instance_id = await register(stub, ref)
        connected = await stub.ConnectInstance(
            reputation_pb2.ConnectInstanceRequest(organization_id=ORG, instance_id=instance_id)
        )
        await scan(simulator, ref, connected.connection.qr.code)

        logged_out = await stub.LogoutInstance(
            reputation_pb2.LogoutInstanceRequest(organization_id=ORG, instance_id=instance_id)
        )
        assert logged_out.instance.connection_state == common_pb2.CONNECTION_STATE_LOGGED_OUT
        assert simulator.sessions[ref].status != "WORKING"

        deleted = await stub.DeleteInstance(
            reputation_pb2.DeleteInstanceRequest(organization_id=ORG, instance_id=instance_id)
        )
        assert deleted.instance.connection_state == common_pb2.CONNECTION_STATE_LOGGED_OUT
        await eventually(lambda: _gone(simulator, ref))
        kept = await stub.GetInstance(
            reputation_pb2.GetInstanceRequest(organization_id=ORG, instance_id=instance_id)
        )
        assert kept.instance.id == instance_id


async def _gone(simulator: ProviderSimulator, ref: str) -> bool:
    return ref not in simulator.sessions


async def test_bad_requests_are_invalid_arguments_and_an_unconfigured_provider_a_precondition(
    simulator, migrated_database, subject_root, jetstream
):
    settings = settings_for(simulator, migrated_database("reputation_service"), subject_root)
    async with running_service(build, settings) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        instance_id = await register(stub, f"phone-{new_id()[:8]}")

        with pytest.raises(grpc.aio.AioRpcError) as bad_id:
            await stub.ConnectInstance(
                reputation_pb2.ConnectInstanceRequest(organization_id=ORG, instance_id="x")
            )
        assert bad_id.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "instance_id" in (
            bad_id.value.details() or ""
        )

        with pytest.raises(grpc.aio.AioRpcError) as bad_phone:
            await stub.ConnectInstance(
                reputation_pb2.ConnectInstanceRequest(
                    organization_id=ORG, instance_id=instance_id, pairing_phone="12"
                )
            )
        assert bad_phone.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "pairing_phone" in (bad_phone.value.details() or "")

        watch = stub.WatchInstance(
            reputation_pb2.WatchInstanceRequest(organization_id=ORG, instance_id=new_id())
        )
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await watch.read()
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

        waha = await stub.RegisterInstance(
            reputation_pb2.RegisterInstanceRequest(
                organization_id=ORG,
                display_name="Elsewhere",
                provider=common_pb2.PROVIDER_WAHA,
                provider_instance_ref=f"waha-{new_id()[:8]}",
                phone="5511987654322",
                purposes=[common_pb2.PURPOSE_DISPATCH],
            )
        )
        with pytest.raises(grpc.aio.AioRpcError) as unconfigured:
            await stub.ConnectInstance(
                reputation_pb2.ConnectInstanceRequest(organization_id=ORG, instance_id=waha.instance.id)
            )
        assert unconfigured.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "REPUTATION_WAHA_URL" in (unconfigured.value.details() or "")
