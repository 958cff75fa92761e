"""The plan's instance cap: ops' PlanChanged kept by version, and RegisterInstance refused at the cap
(FAILED_PRECONDITION with the plan's number), through the use cases and fakes."""

from __future__ import annotations

import pytest

from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import FailedPrecondition
from libs.seedwork.shared_kernel import Provider, Purpose
from reputation_service.application.apply_plan import ApplyPlanChange, ApplyPlanChangeHandler
from reputation_service.application.register_instance import RegisterInstance, RegisterInstanceHandler
from reputation_service.domain.events import InstanceRegistered
from reputation_service.entrypoints.consumers import PlanChanges
from tests.reputation_service.unit.fakes import FakeReputationUnitOfWork
from whatlead.events.v1 import ops_events_pb2
from whatlead.ops.v1 import ops_pb2

ORG = "org-capped"


@pytest.fixture
def uow() -> FakeReputationUnitOfWork:
    return FakeReputationUnitOfWork()


def register(uow: FakeReputationUnitOfWork) -> RegisterInstanceHandler:
    return RegisterInstanceHandler(lambda: uow, FakeClock())


def number(n: int, organization_id: str = ORG) -> RegisterInstance:
    return RegisterInstance(
        organization_id=organization_id,
        display_name=f"n{n}",
        provider=Provider.WAHA,
        provider_instance_ref=f"ref-{n}",
        phone=f"+55119{n:08d}",
        purposes=frozenset({Purpose.DISPATCH}),
    )


async def plan(uow: FakeReputationUnitOfWork, max_instances: int, version: int, org: str = ORG) -> bool:
    async with uow:
        kept = await ApplyPlanChangeHandler()(
            uow, ApplyPlanChange(organization_id=org, max_instances=max_instances, version=version)
        )
        await uow.commit()
    return kept


async def test_registrations_beyond_the_plans_cap_are_refused_and_create_nothing(uow):
    await plan(uow, max_instances=2, version=1)
    for n in range(2):
        await register(uow)(number(n))

    with pytest.raises(FailedPrecondition, match="the plan allows 2 instances"):
        await register(uow)(number(2))

    assert len(uow.events_of(InstanceRegistered)) == 2
    assert await uow.instances.count(ORG) == 2


async def test_raising_the_cap_lets_the_next_one_in_and_zero_means_unlimited(uow):
    await plan(uow, max_instances=1, version=1)
    await register(uow)(number(0))
    with pytest.raises(FailedPrecondition, match="the plan allows 1 instance "):
        await register(uow)(number(1))

    await plan(uow, max_instances=2, version=2)
    await register(uow)(number(1))
    await plan(uow, max_instances=0, version=3)
    for n in range(2, 6):
        await register(uow)(number(n))
    assert await uow.instances.count(ORG) == 6


async def test_an_organization_with_no_plan_yet_is_not_capped_and_caps_are_per_organization(uow):
    await plan(uow, max_instances=1, version=1, org="org-other")
    for n in range(3):
        await register(uow)(number(n))
    await register(uow)(number(9, "org-other"))
    with pytest.raises(FailedPrecondition):
        await register(uow)(number(10, "org-other"))


async def test_an_older_or_repeated_plan_changes_nothing(uow):
    assert await plan(uow, max_instances=5, version=3)
    assert not await plan(uow, max_instances=1, version=2)  # arrived late
    assert not await plan(uow, max_instances=1, version=3)  # redelivered version, other content
    for n in range(5):
        await register(uow)(number(n))
    with pytest.raises(FailedPrecondition, match="allows 5"):
        await register(uow)(number(5))


async def test_lowering_the_cap_below_the_count_unregisters_nothing_and_refuses_new_ones(uow):
    for n in range(3):
        await register(uow)(number(n))
    await plan(uow, max_instances=2, version=1)

    with pytest.raises(FailedPrecondition, match="the plan allows 2 instances and the organization has 3"):
        await register(uow)(number(3))
    assert await uow.instances.count(ORG) == 3


async def test_the_consumer_reads_the_cap_and_version_from_plan_changed(uow):
    event = ops_events_pb2.PlanChanged(
        plan=ops_pb2.Plan(organization_id=ORG, limits=ops_pb2.PlanLimits(max_instances=1), version=7)
    )
    async with uow:
        await PlanChanges(ApplyPlanChangeHandler())(event, uow)
        await uow.commit()

    await register(uow)(number(0))
    with pytest.raises(FailedPrecondition, match="the plan allows 1 instance"):
        await register(uow)(number(1))
    assert uow.allowances.rows[ORG].version == 7
