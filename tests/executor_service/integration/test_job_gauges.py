"""The jobs an operator watches per state on /metrics (whatlead_executor_jobs), read from the Executor's
database by its periodic reading: real PostgreSQL, JetStream and the provider simulator."""

from __future__ import annotations

from prometheus_client import REGISTRY

from libs.seedwork.ids import new_id
from libs.testing.jetstream import publish
from libs.testing.waiting import eventually
from tests.executor_service.integration.harness import (
    approved,
    running,
    settings,
    status_counts,
)


def jobs(state: str) -> float:
    return REGISTRY.get_sample_value("whatlead_executor_jobs", {"state": state}) or 0.0


async def test_a_waiting_job_then_its_send_show_in_the_jobs_per_state(
    migrated_database, jetstream, root, simulator
):
    organization = f"org-{new_id()[-12:]}"
    config = settings(migrated_database("executor_service"), root, simulator.base_url)
    async with running(config, workers=False) as executor:  # nobody sends: the job waits PENDING
        [reading] = executor.gauges
        await reading.run_once()
        pending, sent = jobs("PENDING"), jobs("SENT")
        await publish(jetstream, root, approved(organization, session="gauge-1"))

        async def created() -> bool:
            return await status_counts(executor, organization) == {"PENDING": 1}

        await eventually(created, timeout=15)
        await reading.run_once()
        assert (jobs("PENDING"), jobs("SENT")) == (pending + 1, sent)
        assert REGISTRY.get_sample_value("whatlead_executor_jobs", {"state": "NEEDS_REVIEW"}) is not None

    async with running(config) as executor:  # workers now: it is sent

        async def sent_once() -> bool:
            return await status_counts(executor, organization) == {"SENT": 1}

        await eventually(sent_once, timeout=15)
        await executor.gauges[0].run_once()
        assert (jobs("PENDING"), jobs("SENT")) == (pending, sent + 1)
