"""kill -9 the executor process ten times during a 2,000-message run, restarting it each time: the
provider's ledger shows no message twice, and every intent ends SENT, FAILED or NEEDS_REVIEW."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from executor_service.infrastructure.tables import jobs
from libs.db.engine import create_engine, session_factory
from libs.provider_simulator import run_simulator
from libs.testing.jetstream import publish
from libs.testing.waiting import eventually
from tests.conftest import NATS_URL, ROOT
from tests.executor_service.integration.harness import API_KEY, approved, own_streams

INTENTS = 2000
KILLS = 10
SESSIONS = 20
ORG = "org-crash"


def start_executor(database_url: str, root: str, simulator_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EXECUTOR_DATABASE_URL": database_url,
        "EXECUTOR_NATS_URL": NATS_URL,
        "EXECUTOR_SUBJECT_ROOT": root,
        "EXECUTOR_GRPC_PORT": "0",
        "EXECUTOR_METRICS_PORT": "0",
        "EXECUTOR_SIMULATOR_URL": simulator_url,
        "EXECUTOR_SIMULATOR_API_KEY": API_KEY,
        "EXECUTOR_WORKERS": "4",
        "EXECUTOR_BATCH_SIZE": "16",
        "EXECUTOR_LEASE_SECONDS": "2",
        "EXECUTOR_PROVIDER_TIMEOUT_SECONDS": "1.5",
        "EXECUTOR_RECONCILE_INTERVAL_SECONDS": "0.3",
        "EXECUTOR_POLL_INTERVAL_SECONDS": "0.05",
        "EXECUTOR_BACKOFF_BASE_SECONDS": "0.1",
        "EXECUTOR_BACKOFF_MAX_SECONDS": "0.5",
        "EXECUTOR_LOG_LEVEL": "WARNING",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "executor_service"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_ten_kill_9s_during_2000_sends_lose_nothing_and_duplicate_nothing(
    migrated_database, jetstream, subject_root
):
    database_url = migrated_database("executor_service")
    log = Path(tempfile.mkdtemp(prefix="wl-crash-")) / "executor.log"
    async with own_streams(jetstream, subject_root) as root, run_simulator(api_key=API_KEY) as simulator:
        for n in range(SESSIONS):
            # A little latency keeps calls in flight, so kills land mid-send.
            simulator.configure_session(f"crash-{n}", latency_ms=5)
        for n in range(INTENTS):
            await publish(
                jetstream,
                root,
                approved(ORG, session=f"crash-{n % SESSIONS}", phone=f"5511{n:09d}", text=f"m{n}"),
            )

        process = start_executor(database_url, root, simulator.base_url, log)
        kills = 0
        try:
            while kills < KILLS:
                # Kill once the run made some progress since the last start: always mid-run.
                target = len(simulator.ledger) + INTENTS // (KILLS + 5)

                async def progressed(
                    target: int = target, process: subprocess.Popen[bytes] = process
                ) -> bool:
                    assert process.poll() is None, log.read_text()[-2000:]
                    return len(simulator.ledger) >= target

                await eventually(progressed, timeout=60, every=0.01)
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                process = start_executor(database_url, root, simulator.base_url, log)

            engine = create_engine(database_url)
            sessions = session_factory(engine)

            async def statuses() -> Counter[str]:
                async with sessions() as session:
                    rows = (
                        await session.execute(select(jobs.c.status).where(jobs.c.organization_id == ORG))
                    ).all()
                return Counter(row.status for row in rows)

            async def settled() -> bool:
                found = await statuses()
                return sum(found.values()) == INTENTS and set(found) <= {"SENT", "FAILED", "NEEDS_REVIEW"}

            await eventually(settled, timeout=90, every=0.25)
            async with sessions() as session:
                rows = (
                    await session.execute(
                        select(jobs.c.status, jobs.c.client_message_id, jobs.c.lease_expirations).where(
                            jobs.c.organization_id == ORG
                        )
                    )
                ).all()
            await engine.dispose()
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 15)

        summary = simulator.ledger.summary(include_entries=False)
        final = Counter(row.status for row in rows)
        reconciled = sum(1 for row in rows if row.lease_expirations)
        print(f"\nkills={kills} final={dict(final)} ledger={summary['count']} reconciled={reconciled}")

        assert kills == KILLS
        assert summary["duplicates"] == {}  # no message went out twice
        assert sum(final.values()) == INTENTS  # none lost
        assert final["NEEDS_REVIEW"] <= KILLS
        sent_ids = {row.client_message_id for row in rows if row.status == "SENT"}
        ledger_ids = {entry.client_id for entry in simulator.ledger.entries}
        assert sent_ids <= ledger_ids  # every SENT job really reached the provider
        assert len(ledger_ids) == summary["count"]
