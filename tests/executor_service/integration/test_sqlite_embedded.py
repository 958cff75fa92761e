"""The embedded default (`make run`): SQLite has no row locks, so claims take turns within the process and
a version check refuses a concurrent claim of the same row; the result must be the same: each job sent
exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from executor_service.application.create_job import CreateExecutionJob
from executor_service.infrastructure.proto_mapping import approved_fields
from libs.db.migrations import upgrade
from libs.provider_simulator import run_simulator
from libs.seedwork.shared_kernel import Provider
from libs.testing.waiting import eventually
from tests.conftest import ROOT
from tests.executor_service.integration.harness import (
    API_KEY,
    approved,
    own_streams,
    running,
    settings,
    status_counts,
)

JOBS = 300


async def test_four_workers_on_sqlite_send_each_job_once(tmp_path: Path, jetstream, subject_root):
    url = f"sqlite+aiosqlite:///{tmp_path}/executor.db"
    upgrade(url, ROOT / "executor_service" / "migrations")
    async with own_streams(jetstream, subject_root) as root, run_simulator(api_key=API_KEY) as simulator:
        config = settings(url, root, simulator.base_url, workers=4, batch_size=10)
        async with running(config, workers=False) as executor:
            async with executor.unit_of_work() as uow:
                for n in range(JOBS):
                    event = approved("org-sqlite", session=f"lite-{n % 3}", phone=f"55119{n:07d}")
                    await executor.create_job(
                        uow, CreateExecutionJob(provider=Provider.SIMULATOR, **approved_fields(event))
                    )
                await uow.commit()
            stop = asyncio.Event()
            tasks = [asyncio.create_task(worker.run(stop)) for worker in executor.workers]

            async def all_sent() -> bool:
                return (await status_counts(executor, "org-sqlite")).get("SENT") == JOBS

            await eventually(all_sent, timeout=60, every=0.2)
            stop.set()
            await asyncio.gather(*tasks)
    summary = simulator.ledger.summary(include_entries=False)
    assert summary["count"] == JOBS and summary["duplicates"] == {}
