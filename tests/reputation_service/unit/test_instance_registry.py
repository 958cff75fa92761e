"""The instance registry's rules, through its use cases and hand-written fakes (no I/O)."""

from __future__ import annotations

import pytest

from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import AlreadyExists, InvalidArgument, NotFound
from libs.seedwork.pagination import page_request
from libs.seedwork.shared_kernel import ConnectionState, Provider, Purpose
from reputation_service.application.queries import (
    GetInstance,
    GetInstanceHandler,
    ListInstances,
    ListInstancesHandler,
)
from reputation_service.application.register_instance import RegisterInstance, RegisterInstanceHandler
from reputation_service.application.update_instance import UpdateInstance, UpdateInstanceHandler
from reputation_service.domain.events import InstanceChanged, InstanceRegistered
from reputation_service.domain.instance import InstanceChanges
from reputation_service.domain.ports import InstanceFilter
from tests.reputation_service.unit.fakes import FakeReputationUnitOfWork

ORG = "org-acme"


@pytest.fixture
def uow() -> FakeReputationUnitOfWork:
    return FakeReputationUnitOfWork()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def registration(**overrides: object) -> RegisterInstance:
    fields: dict[str, object] = dict(
        organization_id=ORG,
        display_name="Sales 1",
        provider=Provider.WAHA,
        provider_instance_ref="sales-1",
        phone="+55 11 98765-4321",
        purposes=frozenset({Purpose.DISPATCH, Purpose.WARMUP}),
    )
    fields.update(overrides)
    return RegisterInstance(**fields)  # type: ignore[arg-type]


async def test_registering_stores_the_instance_and_announces_it(uow, clock):
    instance = await RegisterInstanceHandler(lambda: uow, clock)(registration())

    assert instance.phone == "5511987654321"
    assert instance.connection_state is ConnectionState.UNKNOWN
    assert instance.version == 1
    [event] = uow.events_of(InstanceRegistered)
    assert event.aggregate_id == instance.id and event.organization_id == ORG
    assert event.instance.provider_instance_ref == "sales-1"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"organization_id": "  "}, "organization_id"),
        ({"provider": None}, "provider"),
        ({"phone": "12345"}, "phone"),
        ({"phone": "+55 11 9876A-4321"}, "phone"),
        ({"phone": "055119876543"}, "phone"),
        ({"provider_instance_ref": ""}, "provider_instance_ref"),
        ({"provider_instance_ref": "has spaces"}, "provider_instance_ref"),
        ({"purposes": frozenset()}, "purposes"),
        ({"display_name": "x" * 101}, "display_name"),
    ],
)
async def test_malformed_registration_is_rejected_field_by_field_and_changes_nothing(
    uow, clock, overrides, field
):
    with pytest.raises(InvalidArgument) as raised:
        await RegisterInstanceHandler(lambda: uow, clock)(registration(**overrides))

    assert [v.field for v in raised.value.violations] == [field]
    assert uow.instances.rows == {} and uow.committed_events == []


async def test_every_violation_is_reported_at_once(uow, clock):
    with pytest.raises(InvalidArgument) as raised:
        await RegisterInstanceHandler(lambda: uow, clock)(
            registration(organization_id="", phone="1", provider=None)
        )

    assert {v.field for v in raised.value.violations} == {"organization_id", "phone", "provider"}


async def test_the_same_provider_ref_cannot_be_registered_twice_in_an_organization(uow, clock):
    register = RegisterInstanceHandler(lambda: uow, clock)
    await register(registration())

    with pytest.raises(AlreadyExists):
        await register(registration(display_name="again"))
    other_org = await register(registration(organization_id="org-other"))

    assert len(uow.events_of(InstanceRegistered)) == 2
    assert other_org.organization_id == "org-other"


async def test_update_changes_only_given_fields_and_announces_which(uow, clock):
    instance = await RegisterInstanceHandler(lambda: uow, clock)(registration())
    clock.advance(minutes=5)

    updated = await UpdateInstanceHandler(lambda: uow, clock)(
        UpdateInstance(
            organization_id=ORG,
            instance_id=instance.id,
            changes=InstanceChanges(connection_state=ConnectionState.CONNECTED, display_name="Sales 1"),
        )
    )

    assert updated.connection_state is ConnectionState.CONNECTED
    assert updated.version == 2 and updated.updated_at == clock.now()
    [event] = uow.events_of(InstanceChanged)
    assert event.changed_fields == ("connection_state",)


async def test_an_update_that_changes_nothing_announces_nothing(uow, clock):
    instance = await RegisterInstanceHandler(lambda: uow, clock)(registration())

    same = await UpdateInstanceHandler(lambda: uow, clock)(
        UpdateInstance(
            organization_id=ORG, instance_id=instance.id, changes=InstanceChanges(phone="5511987654321")
        )
    )

    assert same.version == 1
    assert uow.events_of(InstanceChanged) == []


async def test_a_malformed_update_changes_nothing(uow, clock):
    instance = await RegisterInstanceHandler(lambda: uow, clock)(registration())

    with pytest.raises(InvalidArgument):
        await UpdateInstanceHandler(lambda: uow, clock)(
            UpdateInstance(
                organization_id=ORG,
                instance_id=instance.id,
                changes=InstanceChanges(display_name="ok", phone="not-a-phone"),
            )
        )

    stored = await GetInstanceHandler(lambda: uow)(GetInstance(organization_id=ORG, instance_id=instance.id))
    assert stored.display_name == "Sales 1" and stored.version == 1


async def test_another_organizations_instance_is_not_found(uow, clock):
    instance = await RegisterInstanceHandler(lambda: uow, clock)(registration())

    with pytest.raises(NotFound):
        await GetInstanceHandler(lambda: uow)(
            GetInstance(organization_id="org-other", instance_id=instance.id)
        )
    with pytest.raises(NotFound):
        await UpdateInstanceHandler(lambda: uow, clock)(
            UpdateInstance(
                organization_id="org-other",
                instance_id=instance.id,
                changes=InstanceChanges(display_name="hijacked"),
            )
        )
    assert (
        await GetInstanceHandler(lambda: uow)(GetInstance(organization_id=ORG, instance_id=instance.id))
    ).display_name == "Sales 1"


async def test_listing_pages_through_one_organization_in_creation_order(uow, clock):
    register = RegisterInstanceHandler(lambda: uow, clock)
    created = [await register(registration(provider_instance_ref=f"n{i}")) for i in range(5)]
    await register(registration(organization_id="org-other", provider_instance_ref="foreign"))
    list_instances = ListInstancesHandler(lambda: uow)

    first = await list_instances(ListInstances(organization_id=ORG, page=page_request(2, "")))
    second = await list_instances(
        ListInstances(organization_id=ORG, page=page_request(2, first.next_page_token))
    )
    third = await list_instances(
        ListInstances(organization_id=ORG, page=page_request(2, second.next_page_token))
    )

    seen = [i.id for page in (first, second, third) for i in page.items]
    assert seen == [i.id for i in created]
    assert third.next_page_token == ""


async def test_listing_filters_by_purpose_and_refuses_a_call_without_organization(uow, clock):
    register = RegisterInstanceHandler(lambda: uow, clock)
    warmup = await register(registration(provider_instance_ref="w", purposes=frozenset({Purpose.WARMUP})))
    await register(registration(provider_instance_ref="d", purposes=frozenset({Purpose.DISPATCH})))
    list_instances = ListInstancesHandler(lambda: uow)

    page = await list_instances(
        ListInstances(
            organization_id=ORG, page=page_request(0, ""), where=InstanceFilter(purpose=Purpose.WARMUP)
        )
    )
    assert [i.id for i in page.items] == [warmup.id]
    with pytest.raises(InvalidArgument) as raised:
        await list_instances(ListInstances(organization_id=" ", page=page_request(0, "")))
    assert raised.value.violations[0].field == "organization_id"


@pytest.mark.parametrize(
    ("size", "token", "field"),
    [(-1, "", "page_size"), (501, "", "page_size"), (10, "garbage!", "page_token")],
)
async def test_bad_paging_is_rejected(size, token, field):
    with pytest.raises(InvalidArgument) as raised:
        page_request(size, token)
    assert raised.value.violations[0].field == field
