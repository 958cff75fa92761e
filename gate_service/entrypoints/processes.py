"""Several Gate processes serving one gRPC port (SO_REUSEPORT: the kernel spreads connections among them).

One Python process uses one core; a pod with more cores runs more processes. They share nothing but the
database and Redis, exactly as replicas do (ADR 0010): the durable consumers hand each event to one of
them, and the others pick the change up with the projection refresher.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from gate_service.config import GateSettings
from libs.db.migrations import upgrade
from libs.logs import configure_logging
from libs.metrics_endpoint import launched_env, process_ended, serve_metrics, served_by_launcher
from libs.rpc.server import REUSE_PORT_ENV

log = logging.getLogger(__name__)


def run_processes(settings: GateSettings, migrations_dir: Path) -> int:
    """Migrates once, starts `settings.processes` servers, forwards SIGTERM/SIGINT to them. When one
    exits on its own, the others are stopped too (the orchestrator restarts the whole pod)."""
    configure_logging("gate_service", settings.log_level)
    if settings.grpc_port == 0:
        raise SystemExit("GATE_PROCESSES > 1 needs a fixed GATE_GRPC_PORT")
    if settings.migrate_on_start:
        upgrade(settings.database_url, migrations_dir)
    # PROMETHEUS_MULTIPROC_DIR set: this process serves every child's metrics, summed, on the metrics port.
    # Otherwise each child serves its own on METRICS_PORT + i.
    shared_metrics = served_by_launcher()
    if shared_metrics:
        serve_metrics(settings.metrics_port, settings.grpc_host)

    def metrics_port(index: int) -> dict[str, str]:
        return {} if shared_metrics else {"GATE_METRICS_PORT": str(settings.metrics_port + index)}

    children = [
        subprocess.Popen(
            [sys.executable, "-m", "gate_service", "serve"],
            env={
                **os.environ,
                "GATE_PROCESSES": "1",
                "GATE_MIGRATE_ON_START": "false",
                **metrics_port(index),
                **launched_env(),
                REUSE_PORT_ENV: "1",
            },
        )
        for index in range(settings.processes)
    ]
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    log.info("gate processes started", extra={"pids": [c.pid for c in children]})
    pid, status = os.wait()
    process_ended(pid)
    code = os.waitstatus_to_exitcode(status)
    if not stopping:
        log.error("a gate process exited, stopping the others", extra={"pid": pid, "code": code})
        forward(signal.SIGTERM, None)
    for child in children:
        child.wait()
        process_ended(child.pid)
    return code if not stopping else 0
