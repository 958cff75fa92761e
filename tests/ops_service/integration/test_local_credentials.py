"""`make run`'s first organization: created through ops with the service credential on the first start,
written readable by its owner only, and kept while its key still resolves."""

from __future__ import annotations

import asyncio
import json
import stat

from deploy.local.credentials import ensure_credentials, service_token
from tests.ops_service.integration.conftest import SERVICE_TOKEN, as_service
from whatlead.ops.v1 import ops_pb2


async def test_the_first_start_writes_an_owner_key_and_later_starts_keep_it(ops, stub, tmp_path) -> None:
    path = tmp_path / "credentials.json"

    kept_first = await asyncio.to_thread(ensure_credentials, ops.address, SERVICE_TOKEN, path)
    written = json.loads(path.read_text())
    kept_then = await asyncio.to_thread(ensure_credentials, ops.address, SERVICE_TOKEN, path)

    assert (kept_first, kept_then) == (False, True)
    assert json.loads(path.read_text()) == written
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert written["role"] == "OWNER"
    resolved = await stub.ResolveApiKey(
        ops_pb2.ResolveApiKeyRequest(secret=written["api_key"]), metadata=as_service()
    )
    assert resolved.organization_id == written["organization_id"]
    assert resolved.role == ops_pb2.MEMBER_ROLE_OWNER
    organization = await stub.GetOrganization(
        ops_pb2.GetOrganizationRequest(organization_id=written["organization_id"]), metadata=as_service()
    )
    assert organization.organization.name == "Demo"


async def test_a_key_that_no_longer_resolves_is_replaced(ops, stub, tmp_path) -> None:
    path = tmp_path / "credentials.json"
    await asyncio.to_thread(ensure_credentials, ops.address, SERVICE_TOKEN, path)
    first = json.loads(path.read_text())
    listed = await stub.ListApiKeys(
        ops_pb2.ListApiKeysRequest(organization_id=first["organization_id"]), metadata=as_service()
    )
    await stub.RevokeApiKey(
        ops_pb2.RevokeApiKeyRequest(
            organization_id=first["organization_id"], api_key_id=listed.api_keys[0].id
        ),
        metadata=as_service(),
    )

    kept = await asyncio.to_thread(ensure_credentials, ops.address, SERVICE_TOKEN, path)

    assert not kept and json.loads(path.read_text())["api_key"] != first["api_key"]


def test_the_service_token_is_made_once_private_and_reused(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("WHATLEAD_SERVICE_TOKEN", raising=False)
    token = service_token(tmp_path)
    assert len(token) >= 40 and service_token(tmp_path) == token
    assert stat.S_IMODE((tmp_path / "service-token").stat().st_mode) == 0o600
    monkeypatch.setenv("WHATLEAD_SERVICE_TOKEN", "exported")
    assert service_token(tmp_path) == "exported"
