"""The plan's instance cap on the running service: ops publishes PlanChanged on JetStream, reputation keeps
it, and RegisterInstance refuses beyond it, also when registrations race for the last slot (PostgreSQL)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from sqlalchemy import text

from libs.db.engine import create_engine
from libs.seedwork.ids import new_id
from libs.testing.jetstream import meta, publish
from libs.testing.services import running_service
from libs.testing.waiting import eventually
from reputation_service.bootstrap import build
from reputation_service.config import ReputationSettings
from tests.conftest import NATS_URL
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import ops_events_pb2
from whatlead.ops.v1 import ops_pb2
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc


@pytest.fixture
async def service(migrated_database, subject_root, jetstream):
    url = migrated_database("reputation_service")
    settings = ReputationSettings(database_url=url, nats_url=NATS_URL, subject_root=subject_root)
    engine = create_engine(url)
    async with running_service(build, settings) as running:
        yield reputation_pb2_grpc.ReputationServiceStub(running.channel), engine
    await engine.dispose()


def number(org: str, n: int) -> reputation_pb2.RegisterInstanceRequest:
    return reputation_pb2.RegisterInstanceRequest(
        organization_id=org,
        display_name=f"n{n}",
        provider=common_pb2.PROVIDER_WAHA,
        provider_instance_ref=f"ref-{n}",
        phone=f"+55119{n:08d}",
        purposes=[common_pb2.PURPOSE_DISPATCH],
    )


async def set_plan(jetstream, subject_root: str, engine, org: str, max_instances: int, version: int) -> None:
    """Publish ops' PlanChanged and wait until reputation kept that version."""
    limits = ops_pb2.PlanLimits(max_instances=max_instances)
    plan = ops_pb2.Plan(organization_id=org, name="test", limits=limits, version=version)
    await publish(jetstream, subject_root, ops_events_pb2.PlanChanged(meta=meta(org, org), plan=plan))

    async def kept() -> bool:
        async with engine.connect() as connection:
            found = await connection.scalar(
                text("SELECT version FROM instance_allowances WHERE organization_id = :org"), {"org": org}
            )
        return found is not None and found >= version

    await eventually(kept, timeout=10)


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def test_registrations_beyond_the_published_cap_are_refused_until_it_is_raised(
    service, jetstream, subject_root
):
    stub, engine = service
    org = f"org-{new_id()[-12:]}"
    await set_plan(jetstream, subject_root, engine, org, max_instances=2, version=1)
    for n in range(2):
        await stub.RegisterInstance(number(org, n))

    error = await refused(stub.RegisterInstance(number(org, 2)))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "the plan allows 2 instances" in (error.details() or "")

    # An older plan arriving late changes nothing; a newer one with room lets the next one in.
    await publish(
        jetstream,
        subject_root,
        ops_events_pb2.PlanChanged(
            meta=meta(org, org),
            plan=ops_pb2.Plan(organization_id=org, limits=ops_pb2.PlanLimits(max_instances=9), version=0),
        ),
    )
    await set_plan(jetstream, subject_root, engine, org, max_instances=3, version=2)
    await stub.RegisterInstance(number(org, 2))
    error = await refused(stub.RegisterInstance(number(org, 3)))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    listed = await stub.ListInstances(reputation_pb2.ListInstancesRequest(organization_id=org))
    assert len(listed.instances) == 3


async def test_concurrent_registrations_never_both_take_the_last_slot(service, jetstream, subject_root):
    stub, engine = service
    org = f"org-{new_id()[-12:]}"
    await set_plan(jetstream, subject_root, engine, org, max_instances=3, version=1)
    await stub.RegisterInstance(number(org, 0))

    results = await asyncio.gather(
        *(stub.RegisterInstance(number(org, n)) for n in range(1, 11)), return_exceptions=True
    )

    admitted = [r for r in results if not isinstance(r, BaseException)]
    refusals = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(admitted) == 2 and len(refusals) == 8
    assert {r.code() for r in refusals} == {grpc.StatusCode.FAILED_PRECONDITION}
    listed = await stub.ListInstances(reputation_pb2.ListInstancesRequest(organization_id=org))
    assert len(listed.instances) == 3
