"""Organizations, members and API keys: who may grant what, what is kept of a secret, and what resolves."""

from __future__ import annotations

import pytest

from libs.seedwork.access import Principal, Role
from libs.seedwork.api_keys import digest
from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from libs.seedwork.pagination import page_request
from ops_service.application.api_keys import (
    CreateApiKey,
    CreateApiKeyHandler,
    ListApiKeys,
    ListApiKeysHandler,
    PublishKeyRecordHandler,
    ResolveApiKey,
    ResolveApiKeyHandler,
    RevokeApiKey,
    RevokeApiKeyHandler,
)
from ops_service.application.organizations import (
    AddMember,
    AddMemberHandler,
    CreateOrganization,
    CreateOrganizationHandler,
    ListMembers,
    ListMembersHandler,
)
from ops_service.domain import events
from tests.ops_service.unit.fakes import FakeKeyDirectory, FakeOpsUnitOfWork, PredictableKeys

SERVICE = Principal.service()


def admin_of(organization_id: str) -> Principal:
    return Principal(organization_id, Role.ADMIN, "0193aaaa-0000-7000-8000-000000000001")


@pytest.fixture
def keys() -> PredictableKeys:
    return PredictableKeys()


async def new_organization(uow: FakeOpsUnitOfWork, clock: FakeClock, name: str = "Acme") -> str:
    organization = await CreateOrganizationHandler(uow, clock)(
        CreateOrganization(name=name, owner_user_id="olga", principal=SERVICE)
    )
    return organization.id


async def test_a_new_organization_has_its_owner_and_says_so_with_the_creator_as_actor(uow, clock) -> None:
    org = await new_organization(uow, clock)

    members = await ListMembersHandler(uow)(ListMembers(organization_id=org, page=page_request(0, "")))
    assert [(m.user_id, m.role) for m in members.items] == [("olga", Role.OWNER)]
    created, added = uow.events_of(events.OrganizationCreated), uow.events_of(events.MemberAdded)
    assert len(created) == 1 and len(added) == 1
    assert {e.actor for e in created + added} == {"service"}
    assert [e.action for e in uow.audit.rows] == ["organization.created"]


async def test_an_organization_needs_a_name_and_an_owner(uow, clock) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await CreateOrganizationHandler(uow, clock)(
            CreateOrganization(name="  ", owner_user_id="", principal=SERVICE)
        )
    assert {v.field for v in refused.value.violations} == {"name", "owner_user_id"}
    assert uow.committed_events == []


async def test_an_admin_adds_members_up_to_its_own_role_and_no_higher(uow, clock) -> None:
    org = await new_organization(uow, clock)
    add = AddMemberHandler(uow, clock)

    await add(AddMember(organization_id=org, user_id="ana", role=Role.ADMIN, principal=admin_of(org)))
    with pytest.raises(PermissionDenied):
        await add(AddMember(organization_id=org, user_id="bob", role=Role.OWNER, principal=admin_of(org)))

    members = await ListMembersHandler(uow)(ListMembers(organization_id=org, page=page_request(0, "")))
    assert {m.user_id for m in members.items} == {"olga", "ana"}
    assert [e.action for e in uow.audit.rows][-1] == "member.added"
    assert uow.audit.rows[-1].actor == f"key:{admin_of(org).api_key_id}"


async def test_a_user_is_a_member_once_and_only_of_an_organization_that_exists(uow, clock) -> None:
    org = await new_organization(uow, clock)
    add = AddMemberHandler(uow, clock)
    with pytest.raises(AlreadyExists):
        await add(AddMember(organization_id=org, user_id="olga", role=Role.MEMBER, principal=SERVICE))
    with pytest.raises(NotFound):
        await add(AddMember(organization_id="no-such-org", user_id="x", role=Role.MEMBER, principal=SERVICE))


async def test_a_key_keeps_only_its_prefix_and_hash_and_resolves_from_its_secret(uow, clock, keys) -> None:
    org = await new_organization(uow, clock)

    issued = await CreateApiKeyHandler(uow, clock, keys)(
        CreateApiKey(organization_id=org, name="ci", role=Role.ADMIN, principal=admin_of(org))
    )

    stored = uow.api_keys.rows[issued.key.id]
    assert issued.secret == keys.issued[0].secret
    assert stored.prefix == keys.issued[0].prefix and stored.secret_sha256 == digest(issued.secret)
    assert issued.secret not in repr(stored)
    assert stored.created_by == f"key:{admin_of(org).api_key_id}"
    resolved = await ResolveApiKeyHandler(uow)(ResolveApiKey(secret=issued.secret))
    assert (resolved.id, resolved.organization_id, resolved.role) == (issued.key.id, org, Role.ADMIN)
    [created] = uow.events_of(events.ApiKeyCreated)
    assert created.api_key.secret_sha256 == digest(issued.secret)


async def test_a_key_above_the_callers_role_is_refused_and_nothing_is_issued(uow, clock, keys) -> None:
    org = await new_organization(uow, clock)
    with pytest.raises(PermissionDenied):
        await CreateApiKeyHandler(uow, clock, keys)(
            CreateApiKey(organization_id=org, name="", role=Role.OWNER, principal=admin_of(org))
        )
    assert uow.api_keys.rows == {}
    assert uow.events_of(events.ApiKeyCreated) == []


async def test_the_service_credential_may_issue_an_owner_key_of_an_existing_organization(
    uow, clock, keys
) -> None:
    org = await new_organization(uow, clock)
    create = CreateApiKeyHandler(uow, clock, keys)
    issued = await create(CreateApiKey(organization_id=org, name="demo", role=Role.OWNER, principal=SERVICE))
    assert issued.key.role is Role.OWNER and issued.key.created_by == "service"
    with pytest.raises(NotFound):
        await create(CreateApiKey(organization_id="elsewhere", name="", role=Role.MEMBER, principal=SERVICE))


async def test_revoking_is_idempotent_and_a_revoked_key_no_longer_resolves(uow, clock, keys) -> None:
    org = await new_organization(uow, clock)
    issued = await CreateApiKeyHandler(uow, clock, keys)(
        CreateApiKey(organization_id=org, name="ci", role=Role.MEMBER, principal=SERVICE)
    )
    revoke = RevokeApiKeyHandler(uow, clock)
    command = RevokeApiKey(organization_id=org, api_key_id=issued.key.id, principal=admin_of(org))

    first, revoked_now = await revoke(command)
    clock.advance(seconds=5)
    again, revoked_again = await revoke(command)

    assert revoked_now and not revoked_again
    assert first.revoked_at == again.revoked_at is not None
    assert len(uow.events_of(events.ApiKeyRevoked)) == 1
    assert [e.action for e in uow.audit.rows].count("api_key.revoked") == 1
    with pytest.raises(NotFound):
        await ResolveApiKeyHandler(uow)(ResolveApiKey(secret=issued.secret))


async def test_another_organizations_key_is_not_found(uow, clock, keys) -> None:
    ours, theirs = await new_organization(uow, clock), await new_organization(uow, clock, "Other")
    issued = await CreateApiKeyHandler(uow, clock, keys)(
        CreateApiKey(organization_id=theirs, name="", role=Role.MEMBER, principal=SERVICE)
    )
    with pytest.raises(NotFound):
        await RevokeApiKeyHandler(uow, clock)(
            RevokeApiKey(organization_id=ours, api_key_id=issued.key.id, principal=admin_of(ours))
        )
    assert uow.api_keys.rows[issued.key.id].revoked_at is None
    listed = await ListApiKeysHandler(uow)(ListApiKeys(organization_id=ours, page=page_request(0, "")))
    assert listed.items == []


@pytest.mark.parametrize(
    "secret",
    ["", "not-a-key", "wl_key00001_" + "x" * 43, "wl_nosuchpf_" + "s" * 43, "wl_key00001"],
)
async def test_anything_but_an_issued_secret_is_not_found(uow, clock, keys, secret) -> None:
    org = await new_organization(uow, clock)
    await CreateApiKeyHandler(uow, clock, keys)(
        CreateApiKey(organization_id=org, name="", role=Role.MEMBER, principal=SERVICE)
    )
    with pytest.raises(NotFound):
        await ResolveApiKeyHandler(uow)(ResolveApiKey(secret=secret))


async def test_the_directory_gets_the_keys_current_record_whichever_event_arrives(uow, clock, keys) -> None:
    org = await new_organization(uow, clock)
    issued = await CreateApiKeyHandler(uow, clock, keys)(
        CreateApiKey(organization_id=org, name="", role=Role.MEMBER, principal=SERVICE)
    )
    await RevokeApiKeyHandler(uow, clock)(
        RevokeApiKey(organization_id=org, api_key_id=issued.key.id, principal=SERVICE)
    )
    directory = FakeKeyDirectory()

    # The creation event delivered late, after the revocation: the directory still says revoked.
    await PublishKeyRecordHandler(directory)(uow, issued.key.id)

    entry = directory.entries[issued.key.prefix]
    assert entry.revoked_at is not None and entry.secret_sha256 == digest(issued.secret)
    assert await PublishKeyRecordHandler(directory)(uow, "not-an-id") is None


async def test_a_key_is_in_the_directory_when_its_creation_and_its_revocation_answer(
    uow, clock, keys
) -> None:
    org = await new_organization(uow, clock)
    directory = FakeKeyDirectory()

    issued = await CreateApiKeyHandler(uow, clock, keys, directory)(
        CreateApiKey(organization_id=org, name="ci", role=Role.MEMBER, principal=SERVICE)
    )
    assert directory.entries[issued.key.prefix].revoked_at is None

    await RevokeApiKeyHandler(uow, clock, directory)(
        RevokeApiKey(organization_id=org, api_key_id=issued.key.id, principal=SERVICE)
    )
    assert directory.entries[issued.key.prefix].revoked_at is not None


class UnreachableDirectory:
    async def put(self, key: object) -> None:
        raise ConnectionError("NATS is down")


async def test_a_directory_out_of_reach_delays_a_key_but_never_fails_its_creation(uow, clock, keys) -> None:
    org = await new_organization(uow, clock)
    issued = await CreateApiKeyHandler(uow, clock, keys, UnreachableDirectory())(
        CreateApiKey(organization_id=org, name="ci", role=Role.MEMBER, principal=SERVICE)
    )
    # Committed with its event: the directory's consumer puts it there once it can.
    assert issued.key.id in uow.api_keys.rows
    assert len(uow.events_of(events.ApiKeyCreated)) == 1
