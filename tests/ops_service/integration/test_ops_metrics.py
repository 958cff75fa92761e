"""The kill switches an operator watches on /metrics: the pauses in force per scope and how old the oldest
is, read from ops' database by its periodic reading, through the running service."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from libs.seedwork.access import Role
from libs.testing.waiting import eventually
from ops_service.config import OpsSettings
from tests.conftest import NATS_URL
from tests.ops_service.integration.conftest import as_key
from whatlead.ops.v1 import ops_pb2

ADMIN_KEY = "0193ffff-0000-7000-8000-000000000016"


@pytest.fixture
def ops_settings(migrated_database, subject_root) -> OpsSettings:
    return OpsSettings(
        database_url=migrated_database("ops_service"),
        nats_url=NATS_URL,
        subject_root=subject_root,
        gauges_interval_seconds=0.05,
    )


def gauge(name: str, scope: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"scope": scope})


async def test_a_pause_in_force_is_counted_and_ages_until_it_is_resumed(stub) -> None:
    org = "org-gauges"
    admin = as_key(org, Role.ADMIN, ADMIN_KEY)

    async def read() -> bool:
        return gauge("whatlead_ops_paused_scopes", "CAMPAIGN") is not None

    await eventually(read, timeout=5)
    before = gauge("whatlead_ops_paused_scopes", "CAMPAIGN") or 0.0
    await stub.PauseExecution(
        ops_pb2.PauseExecutionRequest(
            organization_id=org, scope=ops_pb2.CONTROL_SCOPE_CAMPAIGN, scope_id="camp-1", note="complaints"
        ),
        metadata=admin,
    )

    async def paused_and_aging() -> bool:
        return (
            gauge("whatlead_ops_paused_scopes", "CAMPAIGN") == before + 1
            and (gauge("whatlead_ops_oldest_pause_age_seconds", "CAMPAIGN") or 0.0) > 0
        )

    await eventually(paused_and_aging, timeout=10)
    await stub.ResumeExecution(
        ops_pb2.ResumeExecutionRequest(
            organization_id=org, scope=ops_pb2.CONTROL_SCOPE_CAMPAIGN, scope_id="camp-1"
        ),
        metadata=admin,
    )

    async def resumed() -> bool:
        return gauge("whatlead_ops_paused_scopes", "CAMPAIGN") == before

    await eventually(resumed, timeout=10)
    if before == 0:
        assert gauge("whatlead_ops_oldest_pause_age_seconds", "CAMPAIGN") == 0.0
