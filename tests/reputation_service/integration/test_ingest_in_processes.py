"""`python -m reputation_service` with REPUTATION_PROCESSES=2: the launcher starts two processes that pull
from the same durable consumers, and every signal counts once. Real processes, PostgreSQL and JetStream;
every event is stored twice in its stream (a relay's re-send), so both processes meet repeats."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from libs.db.engine import create_engine, session_factory
from libs.messaging import envelope
from libs.messaging.streams import delete_streams, ensure_streams
from libs.seedwork.ids import new_id
from libs.testing.services import running_service
from libs.testing.waiting import eventually
from reputation_service.bootstrap import build
from reputation_service.config import ReputationSettings
from reputation_service.domain.signals import Granularity
from reputation_service.infrastructure.tables import messaging, signal_buckets, signals
from tests.conftest import NATS_URL, ROOT
from tests.reputation_service.integration.test_signals_from_streams import (
    DURABLES,
    PT,
    publish_all,
    register,
    reported,
    sent,
)
from tests.sending_path import free_port
from whatlead.reputation.v1 import reputation_pb2_grpc

MESSAGES = 400  # over 4 instances: a sent, a delivered and a read each
TOKEN = "t" * 40


def events_of(instances: list[str], count: int) -> tuple[list, list]:
    """(the Executor's MessageSent, the provider's delivered and read) of `count` messages."""
    at = datetime.now(UTC) - timedelta(minutes=1)
    executor, provider = [], []
    for n in range(count):
        instance = instances[n % len(instances)]
        message = f"true_5511{n:09d}@c.us_3EB0{new_id()[-12:].upper()}"
        executor.append(sent(instance, message, at, new_id()))
        provider.append(
            reported(instance, PT.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, at + timedelta(seconds=1), message)
        )
        provider.append(
            reported(instance, PT.PROVIDER_EVENT_TYPE_MESSAGE_READ, at + timedelta(seconds=5), message)
        )
    return executor, provider


def signals_counted_by(metrics_dir: Path, scratch: Path) -> dict[int, float]:
    """whatlead_reputation_signals_total of each process, from its own multiprocess file."""
    found = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        alone = scratch / str(pid)
        alone.mkdir()
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        found[pid] = sum(
            sample.value
            for metric in registry.collect()
            for sample in metric.samples
            if sample.name == "whatlead_reputation_signals_total"
        )
    return found


async def test_two_processes_pulling_from_the_same_consumers_count_every_signal_once(
    migrated_database, jetstream, subject_root, tmp_path
):
    database_url = migrated_database("reputation_service")
    root = f"{subject_root}procs"
    await ensure_streams(jetstream, root)
    settings = ReputationSettings(database_url=database_url, nats_url=NATS_URL, subject_root=root)
    async with running_service(build, settings) as service:
        stub = reputation_pb2_grpc.ReputationServiceStub(service.channel)
        instances = [await register(stub) for _ in range(4)]

    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "protos"), os.environ.get("PYTHONPATH", "")]),
        "REPUTATION_DATABASE_URL": database_url,
        "REPUTATION_NATS_URL": NATS_URL,
        "REPUTATION_SUBJECT_ROOT": root,
        "REPUTATION_GRPC_PORT": str(free_port()),
        "REPUTATION_METRICS_PORT": str(free_port()),
        "REPUTATION_PROCESSES": "2",
        "REPUTATION_SIGNAL_BATCH_SIZE": "32",  # many batches, so both processes take turns at the stream
        "REPUTATION_LOG_LEVEL": "INFO",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "WHATLEAD_SERVICE_TOKEN": TOKEN,
    }
    launcher = subprocess.Popen(  # noqa: ASYNC220 (started once; its logs are read in a thread)
        [sys.executable, "-m", "reputation_service"], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    ready: list[str] = []
    logs: list[str] = []

    def read_logs() -> None:
        assert launcher.stdout is not None
        for line in launcher.stdout:
            logs.append(line)
            if '"msg": "ready"' in line:
                ready.append(line)

    reader = threading.Thread(target=read_logs, daemon=True)
    reader.start()
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:

        async def both_ready() -> bool:
            assert launcher.poll() is None, "".join(logs[-20:])
            return len(ready) == 2

        await eventually(both_ready, timeout=60, every=0.1)

        executor, provider = events_of(instances, MESSAGES)
        await publish_all(jetstream, root, executor + provider)
        await publish_all(jetstream, root, executor + provider, again=True)

        async def consumed_everything() -> bool:
            for context, durable in DURABLES.items():
                info = await jetstream.consumer_info(envelope.stream_name(root, context), durable)
                if info.num_pending or info.num_ack_pending:
                    return False
            return True

        await eventually(consumed_everything, timeout=120, every=0.2)

        b = signal_buckets.c
        async with sessions() as session:
            recorded = await session.scalar(select(func.count()).select_from(signals))
            inbox = await session.scalar(
                select(func.count())
                .select_from(messaging.inbox)
                .where(messaging.inbox.c.consumer.in_(list(DURABLES.values())))
            )
            per_granularity = {
                granularity: tuple(
                    (
                        await session.execute(
                            select(func.sum(b.sent), func.sum(b.delivered), func.sum(b.read)).where(
                                b.granularity == int(granularity)
                            )
                        )
                    ).one()
                )
                for granularity in Granularity
            }
        assert recorded == 3 * MESSAGES
        assert inbox == 3 * MESSAGES  # each event once, though each was stored twice
        assert per_granularity == {g: (MESSAGES, MESSAGES, MESSAGES) for g in Granularity}
    finally:
        launcher.send_signal(signal.SIGTERM)
        await asyncio.to_thread(launcher.wait, 60)
        reader.join(timeout=10)
        await engine.dispose()
        await delete_streams(jetstream, root)
    assert launcher.returncode == 0

    # Both processes did part of the work (the launcher counts nothing), together each signal once.
    by_process = signals_counted_by(metrics_dir, tmp_path)
    counting = {pid: counted for pid, counted in by_process.items() if counted}
    assert len(counting) == 2, by_process
    assert sum(counting.values()) == 3 * MESSAGES
