"""Several processes of one service in one pod, sharing its gRPC port (SO_REUSEPORT: the kernel spreads
connections among them) and its durable consumers (JetStream hands each pull consumer's messages to one of
its pullers).

One Python process uses one core; a pod with more cores runs more processes (GATE_PROCESSES,
REPUTATION_PROCESSES). They share nothing but the stores, exactly as replicas do, so what a service does
with several processes it must already do safely with several replicas.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from libs.config import ServiceSettings
from libs.db.migrations import upgrade
from libs.logs import configure_logging
from libs.metrics_endpoint import launched_env, process_ended, serve_metrics, served_by_launcher
from libs.rpc.server import REUSE_PORT_ENV

log = logging.getLogger(__name__)


class ProcessesSettings(BaseSettings):
    """Mixed into the settings of a service that can run several processes per pod: <PREFIX>_PROCESSES,
    each with its own event loop; metrics of all on METRICS_PORT when PROMETHEUS_MULTIPROC_DIR is set
    (libs/metrics_endpoint.py), else on METRICS_PORT, METRICS_PORT+1, ... One per core is the useful most."""

    processes: int = Field(default=1, ge=1, le=64)


def run_processes(service: str, settings: ServiceSettings, processes: int, migrations_dir: Path) -> int:
    """Migrates once, starts `processes` copies of `python -m <service> serve`, forwards SIGTERM/SIGINT to
    them. When one exits on its own, the others are stopped too (the orchestrator restarts the whole
    pod)."""
    configure_logging(service, settings.log_level)
    prefix = str(settings.model_config.get("env_prefix", ""))
    if settings.grpc_port == 0:
        raise SystemExit(f"{prefix}PROCESSES > 1 needs a fixed {prefix}GRPC_PORT")
    if settings.migrate_on_start:
        upgrade(settings.database_url, migrations_dir)
    # PROMETHEUS_MULTIPROC_DIR set: this process serves every child's metrics, summed, on the metrics port.
    # Otherwise each child serves its own on METRICS_PORT + i.
    shared_metrics = served_by_launcher()
    if shared_metrics:
        serve_metrics(settings.metrics_port, settings.grpc_host)

    def metrics_port(index: int) -> dict[str, str]:
        return {} if shared_metrics else {f"{prefix}METRICS_PORT": str(settings.metrics_port + index)}

    children = [
        subprocess.Popen(
            [sys.executable, "-m", service, "serve"],
            env={
                **os.environ,
                f"{prefix}PROCESSES": "1",
                f"{prefix}MIGRATE_ON_START": "false",
                **metrics_port(index),
                **launched_env(),
                REUSE_PORT_ENV: "1",
            },
        )
        for index in range(processes)
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
    log.info("processes started", extra={"pids": [c.pid for c in children]})
    pid, status = os.wait()
    process_ended(pid)
    code = os.waitstatus_to_exitcode(status)
    if not stopping:
        log.error("a process exited, stopping the others", extra={"pid": pid, "code": code})
        forward(signal.SIGTERM, None)
    for child in children:
        child.wait()
        process_ended(child.pid)
    return code if not stopping else 0
