"""The ops service as its clients reach it: in-process, on a free port, over real PostgreSQL and JetStream,
behind the real authentication of every service (libs/rpc). `as_key` and `as_service` give the metadata of
a call made with a key of that organization and role (installed in the running service's key table), or
with the deployment's service credential."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from libs.messaging.key_directory import delete_key_directory, ensure_key_directory
from libs.seedwork.access import Role
from libs.testing.services import RunningService, running_service
from ops_service.bootstrap import build
from ops_service.config import OpsSettings
from tests.conftest import NATS_URL
from whatlead.ops.v1 import ops_pb2_grpc

Metadata = tuple[tuple[str, str], ...]

# The ops service of the test being run (tests run one at a time): the module-level helpers below reach
# its key table, so a test names its caller in one expression.
_serving: list[RunningService] = []


def _bearer(credential: str) -> Metadata:
    return (("authorization", f"Bearer {credential}"),)


def as_service() -> Metadata:
    return _bearer(_serving[-1].service_credential)


def as_key(
    organization_id: str, role: Role, key_id: str = "0193dddd-0000-7000-8000-000000000004"
) -> Metadata:
    return _bearer(_serving[-1].key(organization_id, role, api_key_id=key_id))


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
    async with running_service(build, ops_settings) as service:
        _serving.append(service)
        try:
            yield service
        finally:
            _serving.remove(service)


@pytest.fixture
def stub(ops) -> ops_pb2_grpc.OpsServiceStub:
    return ops_pb2_grpc.OpsServiceStub(ops.channel)


@pytest.fixture
async def key_directory(jetstream, subject_root) -> AsyncIterator[Any]:
    bucket = await ensure_key_directory(jetstream, subject_root)
    yield bucket
    await delete_key_directory(jetstream, subject_root)
