"""The ops service as its clients reach it: in-process, on a free port, over real PostgreSQL and JetStream.

Authentication is not this service's (the server's interceptor finds the caller); here a stand-in names
the caller of each call in the `x-test-caller` metadata: "service", or "<organization>|<ROLE>|<key id>"; a
call with `authorization: Bearer <SERVICE_TOKEN>` is the service's, as the real interceptor decides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from libs.messaging.key_directory import delete_key_directory, ensure_key_directory
from libs.rpc.principal import reset_principal, set_principal
from libs.rpc.server import ServicerBinding
from libs.runtime import ServiceParts
from libs.seedwork.access import Principal, Role
from libs.testing.services import RunningService, running_service
from ops_service.bootstrap import build
from ops_service.config import OpsSettings
from tests.conftest import NATS_URL
from whatlead.ops.v1 import ops_pb2_grpc

CALLER = "x-test-caller"
SERVICE_TOKEN = "test-service-token"
Metadata = tuple[tuple[str, str], ...]


def as_service() -> Metadata:
    return ((CALLER, "service"),)


def as_key(
    organization_id: str, role: Role, key_id: str = "0193dddd-0000-7000-8000-000000000004"
) -> Metadata:
    return ((CALLER, f"{organization_id}|{role.name}|{key_id}"),)


def _caller(metadata: Any) -> Principal:
    metadata = dict(metadata or ())
    value = metadata.get(CALLER, "")
    if value == "service" or metadata.get("authorization") == f"Bearer {SERVICE_TOKEN}":
        return Principal.service()
    organization_id, role, key_id = value.split("|")
    return Principal(organization_id, Role[role], key_id)


class _AsCaller:
    """Wraps the servicer: each RPC runs with the caller its metadata names, as under the auth interceptor."""

    def __init__(self, servicer: Any) -> None:
        self._servicer = servicer

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._servicer, name)
        if not name[:1].isupper():
            return method

        async def call(request: Any, context: Any) -> Any:
            token = set_principal(_caller(context.invocation_metadata()))
            try:
                return await method(request, context)
            finally:
                reset_principal(token)

        return call


async def build_with_callers(settings: OpsSettings, **kwargs: Any) -> ServiceParts:
    parts = await build(settings, **kwargs)
    bindings = [
        ServicerBinding(_AsCaller(b.servicer), b.add_to_server, b.service_name) for b in parts.bindings
    ]
    return ServiceParts(bindings=bindings, workers=parts.workers, close=parts.close, outages=parts.outages)


@pytest.fixture
def ops_settings(migrated_database, subject_root) -> OpsSettings:
    return OpsSettings(
        database_url=migrated_database("ops_service"),
        nats_url=NATS_URL,
        subject_root=subject_root,
        expiry_interval_seconds=0.2,
    )


@pytest.fixture
async def ops(ops_settings, jetstream) -> AsyncIterator[RunningService]:
    async with running_service(build_with_callers, ops_settings) as service:
        yield service


@pytest.fixture
def stub(ops) -> ops_pb2_grpc.OpsServiceStub:
    return ops_pb2_grpc.OpsServiceStub(ops.channel)


@pytest.fixture
async def key_directory(jetstream, subject_root) -> AsyncIterator[Any]:
    bucket = await ensure_key_directory(jetstream, subject_root)
    yield bucket
    await delete_key_directory(jetstream, subject_root)
