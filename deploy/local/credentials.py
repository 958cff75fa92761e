"""`make run`'s credentials: the deployment's service token, and a first organization with an OWNER key.

The service token (`WHATLEAD_SERVICE_TOKEN`, every process) is made once for the data folder and kept
there, readable by its owner only. Once ops serves, the launcher makes sure `credentials.json` holds a key
ops still resolves; when it does not (first start, or the key was revoked), it creates the organization
"Demo" and an OWNER key through ops' gRPC with the service token, and writes the file (0600) where the CLI
finds it."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import grpc

from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

SERVICE_TOKEN_VARIABLE = "WHATLEAD_SERVICE_TOKEN"
DEMO_ORGANIZATION = "Demo"
DEMO_OWNER = "demo"
DEADLINE_SECONDS = 10.0


def _private_file(path: Path, text: str) -> None:
    """Written readable by its owner only, from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def service_token(data: Path) -> str:
    """The one the operator exported, else the data folder's own (made on the first start)."""
    if exported := os.environ.get(SERVICE_TOKEN_VARIABLE):
        return exported
    path = data / "service-token"
    if not path.exists():
        _private_file(path, secrets.token_urlsafe(32))
    return path.read_text().strip()


def ensure_credentials(ops_address: str, token: str, path: Path) -> bool:
    """True when `path` already held a key ops resolves; False when a new organization and key were
    written to it. Raises grpc.RpcError when ops refuses."""
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(ops_address) as channel:
        stub = ops_pb2_grpc.OpsServiceStub(channel)
        if _still_resolves(stub, path, metadata):
            return True
        organization = stub.CreateOrganization(
            ops_pb2.CreateOrganizationRequest(name=DEMO_ORGANIZATION, owner_user_id=DEMO_OWNER),
            metadata=metadata,
            timeout=DEADLINE_SECONDS,
        ).organization
        created = stub.CreateApiKey(
            ops_pb2.CreateApiKeyRequest(
                organization_id=organization.id, name="make run", role=ops_pb2.MEMBER_ROLE_OWNER
            ),
            metadata=metadata,
            timeout=DEADLINE_SECONDS,
        )
    credentials = {"organization_id": organization.id, "api_key": created.secret, "role": "OWNER"}
    _private_file(path, json.dumps(credentials, indent=2) + "\n")
    return False


def _still_resolves(
    stub: ops_pb2_grpc.OpsServiceStub, path: Path, metadata: tuple[tuple[str, str], ...]
) -> bool:
    try:
        secret = json.loads(path.read_text())["api_key"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    try:
        stub.ResolveApiKey(
            ops_pb2.ResolveApiKeyRequest(secret=secret), metadata=metadata, timeout=DEADLINE_SECONDS
        )
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True
