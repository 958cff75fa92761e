"""The instance registry's rules, through its use cases and hand-written fakes (no I/O)."""

from __future__ import annotations

import pytest

from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import AlreadyExists, InvalidArgument, NotFound
from libs.seedwork.pagination import page_request
from libs.seedwork.shared_kernel import ConnectionState, Provider, ProviderEngine, Purpose
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


async def test_registering_records_the_providers_version_and_engine_and_announces_them(uow, clock):
    instance = await RegisterInstanceHandler(lambda: uow, clock)(
        registration(provider_version="2026.4.3", provider_engine=ProviderEngine.GOWS)
    )

    assert (instance.provider_version, instance.provider_engine) == ("2026.4.3", ProviderEngine.GOWS)
    [event] = uow.events_of(InstanceRegistered)
    assert (event.instance.provider_version, event.instance.provider_engine) == (
        "2026.4.3",
        ProviderEngine.GOWS,
    )


async def test_an_instance_registered_without_version_or_engine_is_unknown(uow, clock):
    instance = await RegisterInstanceHandler(lambda: uow, clock)(registration(provider=Provider.WUZAPI))

    assert (instance.provider_version, instance.provider_engine) == ("", ProviderEngine.UNSPECIFIED)


@pytest.mark.parametrize("version", ["", "2026.4.3", "2.3.6", "2024.10.1-plus", "2.3.6-rc.1", "1.0+build.7"])
async def test_provider_releases_as_providers_name_them_are_accepted(uow, clock, version):
    instance = await RegisterInstanceHandler(lambda: uow, clock)(registration(provider_version=version))

    assert instance.provider_version == version


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"provider_version": "v2026.4.3"}, "provider_version"),
        ({"provider_version": "latest"}, "provider_version"),
        ({"provider_version": "2026.4.3 "}, "provider_version"),
        ({"provider_version": "2026.4.3\n"}, "provider_version"),
        ({"provider_version": "1.2.3.4.5"}, "provider_version"),
        ({"provider_version": "2026..3"}, "provider_version"),
        ({"provider_version": "2026.4.3-"}, "provider_version"),
        ({"provider_version": "1" * 33}, "provider_version"),
        ({"provider": Provider.EVOLUTION, "provider_engine": ProviderEngine.NOWEB}, "provider_engine"),
        ({"provider": Provider.WUZAPI, "provider_engine": ProviderEngine.GOWS}, "provider_engine"),
        ({"provider": Provider.SIMULATOR, "provider_engine": ProviderEngine.WEBJS}, "provider_engine"),
    ],
)
async def test_a_malformed_version_or_an_engine_outside_waha_is_refused_and_creates_nothing(
    uow, clock, overrides, field
):
    with pytest.raises(InvalidArgument) as raised:
        await RegisterInstanceHandler(lambda: uow, clock)(registration(**overrides))

    assert [v.field for v in raised.value.violations] == [field]
    assert uow.instances.rows == {} and uow.committed_events == []


async def test_an_engine_outside_waha_is_refused_with_the_reason(uow, clock):
    with pytest.raises(InvalidArgument) as raised:
        await RegisterInstanceHandler(lambda: uow, clock)(
            registration(provider=Provider.EVOLUTION, provider_engine=ProviderEngine.GOWS)
        )

    [violation] = raised.value.violations
    assert (violation.field, violation.description) == ("provider_engine", "only WAHA has engines")


def update_of(instance_id: str, **changes: object) -> UpdateInstance:
    return UpdateInstance(
        organization_id=ORG,
        instance_id=instance_id,
        changes=InstanceChanges(**changes),  # type: ignore[arg-type]
    )


async def test_updating_the_version_and_engine_announces_both(uow, clock):
    instance = await RegisterInstanceHandler(lambda: uow, clock)(registration())

    updated = await UpdateInstanceHandler(lambda: uow, clock)(
        update_of(instance.id, provider_version="2026.4.3", provider_engine=ProviderEngine.NOWEB)
    )

    assert (updated.provider_version, updated.provider_engine) == ("2026.4.3", ProviderEngine.NOWEB)
    assert updated.version == 2
    [event] = uow.events_of(InstanceChanged)
    assert event.changed_fields == ("provider_version", "provider_engine")
    assert event.instance.provider_engine is ProviderEngine.NOWEB


async def test_a_version_can_be_cleared_back_to_unknown(uow, clock):
    instance = await RegisterInstanceHandler(lambda: uow, clock)(
        registration(provider_version="2026.4.3", provider_engine=ProviderEngine.GOWS)
    )

    updated = await UpdateInstanceHandler(lambda: uow, clock)(
        update_of(instance.id, provider_version="", provider_engine=ProviderEngine.UNSPECIFIED)
    )

    assert (updated.provider_version, updated.provider_engine) == ("", ProviderEngine.UNSPECIFIED)


@pytest.mark.parametrize(
    ("provider", "changes", "field"),
    [
        (Provider.WAHA, {"provider_version": "next"}, "provider_version"),
        (Provider.EVOLUTION, {"provider_engine": ProviderEngine.NOWEB}, "provider_engine"),
        (
            Provider.WAHA,
            {"provider": Provider.WUZAPI, "provider_engine": ProviderEngine.GOWS},
            "provider_engine",
        ),
    ],
)
async def test_a_malformed_version_or_engine_update_changes_nothing(uow, clock, provider, changes, field):
    instance = await RegisterInstanceHandler(lambda: uow, clock)(
        registration(provider=provider, provider_version="2.3.6")
    )

    with pytest.raises(InvalidArgument) as raised:
        await UpdateInstanceHandler(lambda: uow, clock)(update_of(instance.id, **changes))

    assert [v.field for v in raised.value.violations] == [field]
    stored = await GetInstanceHandler(lambda: uow)(GetInstance(organization_id=ORG, instance_id=instance.id))
    assert (stored.provider, stored.provider_version, stored.version) == (provider, "2.3.6", 1)
    assert uow.events_of(InstanceChanged) == []


async def test_another_provider_starts_with_an_unknown_version_and_engine(uow, clock):
    # "2026.4.3 GOWS" names a WAHA release: kept on Evolution it would pick a capability row never checked.
    instance = await RegisterInstanceHandler(lambda: uow, clock)(
        registration(provider_version="2026.4.3", provider_engine=ProviderEngine.GOWS)
    )

    moved = await UpdateInstanceHandler(lambda: uow, clock)(
        update_of(instance.id, provider=Provider.EVOLUTION)
    )

    assert (moved.provider, moved.provider_version, moved.provider_engine) == (
        Provider.EVOLUTION,
        "",
        ProviderEngine.UNSPECIFIED,
    )
    [event] = uow.events_of(InstanceChanged)
    assert event.changed_fields == ("provider", "provider_version", "provider_engine")


async def test_a_provider_change_keeps_the_version_and_engine_given_with_it(uow, clock):
    instance = await RegisterInstanceHandler(lambda: uow, clock)(
        registration(provider=Provider.EVOLUTION, provider_version="2.3.6")
    )
    update = UpdateInstanceHandler(lambda: uow, clock)

    moved = await update(
        update_of(
            instance.id,
            provider=Provider.WAHA,
            provider_version="2026.4.3",
            provider_engine=ProviderEngine.GOWS,
        )
    )
    unmoved = await update(update_of(instance.id, provider=Provider.WAHA, display_name="Sales WAHA"))

    assert (moved.provider_version, moved.provider_engine) == ("2026.4.3", ProviderEngine.GOWS)
    # Naming the provider it already has is no change of provider: nothing is reset.
    assert (unmoved.provider_version, unmoved.provider_engine) == ("2026.4.3", ProviderEngine.GOWS)
    assert [e.changed_fields for e in uow.events_of(InstanceChanged)] == [
        ("provider", "provider_version", "provider_engine"),
        ("display_name",),
    ]
