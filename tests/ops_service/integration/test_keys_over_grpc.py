"""Organizations, members and API keys over gRPC: the secret once, never again; what resolves; who may
grant what; and the key directory every service authenticates from."""

from __future__ import annotations

import grpc
import pytest

from libs.messaging.key_directory import decode_key
from libs.rpc.errors import field_violations
from libs.seedwork.access import Role
from libs.seedwork.api_keys import digest
from libs.testing.waiting import eventually
from tests.ops_service.integration.conftest import as_key, as_service
from whatlead.ops.v1 import ops_pb2


async def new_organization(stub, name: str = "Acme") -> str:
    response = await stub.CreateOrganization(
        ops_pb2.CreateOrganizationRequest(name=name, owner_user_id="olga"), metadata=as_service()
    )
    return str(response.organization.id)


async def new_key(stub, org: str, role=ops_pb2.MEMBER_ROLE_ADMIN, metadata=None):
    return await stub.CreateApiKey(
        ops_pb2.CreateApiKeyRequest(organization_id=org, name="ci", role=role),
        metadata=metadata or as_service(),
    )


async def test_a_key_is_shown_once_resolves_and_stops_resolving_when_revoked(stub) -> None:
    org = await new_organization(stub)
    created = await new_key(stub, org)

    assert created.secret.startswith(f"wl_{created.api_key.prefix}_")
    resolved = await stub.ResolveApiKey(
        ops_pb2.ResolveApiKeyRequest(secret=created.secret), metadata=as_service()
    )
    assert (resolved.organization_id, resolved.api_key_id, resolved.role) == (
        org,
        created.api_key.id,
        ops_pb2.MEMBER_ROLE_ADMIN,
    )
    listed = await stub.ListApiKeys(
        ops_pb2.ListApiKeysRequest(organization_id=org), metadata=as_key(org, Role.ADMIN)
    )
    assert [k.id for k in listed.api_keys] == [created.api_key.id]
    # Neither the secret nor its hash is ever listed (only the public prefix).
    wire = listed.SerializeToString()
    assert created.secret.split("_", 2)[2].encode() not in wire and digest(created.secret) not in wire

    revoked = await stub.RevokeApiKey(
        ops_pb2.RevokeApiKeyRequest(organization_id=org, api_key_id=created.api_key.id),
        metadata=as_key(org, Role.ADMIN),
    )
    again = await stub.RevokeApiKey(
        ops_pb2.RevokeApiKeyRequest(organization_id=org, api_key_id=created.api_key.id),
        metadata=as_key(org, Role.ADMIN),
    )
    assert revoked.api_key.HasField("revoked_at") and again.api_key.revoked_at == revoked.api_key.revoked_at
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ResolveApiKey(ops_pb2.ResolveApiKeyRequest(secret=created.secret), metadata=as_service())
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND


async def test_the_directory_holds_each_keys_current_record_within_seconds(stub, key_directory) -> None:
    org = await new_organization(stub)
    created = await new_key(stub, org)

    async def entry():
        try:
            return decode_key((await key_directory.get(created.api_key.prefix)).value)
        except Exception:
            return None

    async def present() -> bool:
        return await entry() is not None

    await eventually(present, timeout=5)
    record = await entry()
    assert record.api_key.id == created.api_key.id and record.secret_sha256 == digest(created.secret)
    assert not record.api_key.HasField("revoked_at")

    await stub.RevokeApiKey(
        ops_pb2.RevokeApiKeyRequest(organization_id=org, api_key_id=created.api_key.id), metadata=as_service()
    )

    async def revoked() -> bool:
        record = await entry()
        return record is not None and record.api_key.HasField("revoked_at")

    await eventually(revoked, timeout=5)


async def test_a_caller_grants_at_most_its_own_role(stub) -> None:
    org = await new_organization(stub)
    admin = as_key(org, Role.ADMIN)

    for call in (
        stub.CreateApiKey(
            ops_pb2.CreateApiKeyRequest(organization_id=org, role=ops_pb2.MEMBER_ROLE_OWNER), metadata=admin
        ),
        stub.AddMember(
            ops_pb2.AddMemberRequest(organization_id=org, user_id="bob", role=ops_pb2.MEMBER_ROLE_OWNER),
            metadata=admin,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED

    await stub.AddMember(
        ops_pb2.AddMemberRequest(organization_id=org, user_id="ana", role=ops_pb2.MEMBER_ROLE_ADMIN),
        metadata=admin,
    )
    members = await stub.ListMembers(ops_pb2.ListMembersRequest(organization_id=org), metadata=admin)
    assert {(m.user_id, m.role) for m in members.members} == {
        ("olga", ops_pb2.MEMBER_ROLE_OWNER),
        ("ana", ops_pb2.MEMBER_ROLE_ADMIN),
    }
    listed = await stub.ListApiKeys(ops_pb2.ListApiKeysRequest(organization_id=org), metadata=admin)
    assert list(listed.api_keys) == []


async def test_another_organizations_key_is_not_found(stub) -> None:
    ours, theirs = await new_organization(stub), await new_organization(stub, "Other")
    theirs_key = await new_key(stub, theirs)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.RevokeApiKey(
            ops_pb2.RevokeApiKeyRequest(organization_id=ours, api_key_id=theirs_key.api_key.id),
            metadata=as_key(ours, Role.OWNER),
        )
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND
    still = await stub.ResolveApiKey(
        ops_pb2.ResolveApiKeyRequest(secret=theirs_key.secret), metadata=as_service()
    )
    assert still.api_key_id == theirs_key.api_key.id


async def test_an_organization_is_read_back_and_an_unknown_one_is_not_found(stub) -> None:
    org = await new_organization(stub, "Read Me")
    found = await stub.GetOrganization(
        ops_pb2.GetOrganizationRequest(organization_id=org), metadata=as_key(org, Role.MEMBER)
    )
    assert found.organization.name == "Read Me"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetOrganization(
            ops_pb2.GetOrganizationRequest(organization_id="0193eeee-0000-7000-8000-000000000005"),
            metadata=as_service(),
        )
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("CreateOrganization", ops_pb2.CreateOrganizationRequest(owner_user_id="olga"), "name"),
        ("CreateApiKey", ops_pb2.CreateApiKeyRequest(organization_id="org-1"), "role"),
        (
            "RevokeApiKey",
            ops_pb2.RevokeApiKeyRequest(organization_id="org-1", api_key_id="nope"),
            "api_key_id",
        ),
        ("ResolveApiKey", ops_pb2.ResolveApiKeyRequest(), "secret"),
        (
            "AddMember",
            ops_pb2.AddMemberRequest(organization_id="org-1", role=ops_pb2.MEMBER_ROLE_MEMBER),
            "user_id",
        ),
        (
            "ListApiKeys",
            ops_pb2.ListApiKeysRequest(organization_id="org-1", page_token="garbage"),
            "page_token",
        ),
    ],
)
async def test_bad_input_is_refused_with_the_field_named(stub, method, request_, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await getattr(stub, method)(request_, metadata=as_service())
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value)
