"""The reputation service as its clients reach it: in-process, on a free port, over real PostgreSQL and
JetStream."""

from __future__ import annotations

import pytest

from libs.testing.services import running_service
from reputation_service.bootstrap import build
from reputation_service.config import ReputationSettings
from tests.conftest import NATS_URL
from whatlead.reputation.v1 import reputation_pb2_grpc


@pytest.fixture
async def registry(migrated_database, subject_root, jetstream):
    settings = ReputationSettings(
        database_url=migrated_database("reputation_service"), nats_url=NATS_URL, subject_root=subject_root
    )
    async with running_service(build, settings) as service:
        yield service


@pytest.fixture
def stub(registry) -> reputation_pb2_grpc.ReputationServiceStub:
    return reputation_pb2_grpc.ReputationServiceStub(registry.channel)
