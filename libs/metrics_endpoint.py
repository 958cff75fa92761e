"""Where a service's Prometheus metrics are served. One process: its own registry on the metrics port. Several
processes of one service in one pod (the Gate's GATE_PROCESSES): with PROMETHEUS_MULTIPROC_DIR set, every
process writes its series to files there (prometheus_client's multiprocess mode, chosen when it is imported)
and the process that started the others serves them all, summed, on the one metrics port. Gauges say how
processes combine (`multiprocess_mode`): livesum for what each process holds, mostrecent for what each
reads from a shared store."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Set by a launcher for the processes it starts: it serves their metrics, they serve none of their own.
SERVED_BY_LAUNCHER_ENV = "WHATLEAD_METRICS_SERVED_BY_LAUNCHER"


def multiprocess_dir() -> Path | None:
    directory = os.environ.get(MULTIPROCESS_DIR_ENV)
    return Path(directory) if directory else None


def serve_metrics(port: int, addr: str) -> int | None:
    """Serve this process's metrics (or, in multiprocess mode, every process's) on `port`; returns the port
    bound (`port` 0: a free one), None when a launcher serves them."""
    if os.environ.get(SERVED_BY_LAUNCHER_ENV) == "1":
        return None
    directory = multiprocess_dir()
    if directory is None:
        server, _ = start_http_server(port, addr=addr)
    else:
        remove_past_runs(directory)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
        server, _ = start_http_server(port, addr=addr, registry=registry)
    return int(server.server_port)


def remove_past_runs(directory: Path) -> None:
    """The files of every process but this one: the serving process starts before those it serves, so
    they are a past run's (a restarted container keeps its volume, and may give a new process an old
    pid, which would carry the old counts on)."""
    directory.mkdir(parents=True, exist_ok=True)
    own = f"_{os.getpid()}.db"
    for path in directory.glob("*.db"):
        if not path.name.endswith(own):
            path.unlink(missing_ok=True)


def served_by_launcher() -> bool:
    """Whether a launcher serves the metrics of the processes it starts: in multiprocess mode. Otherwise
    each process serves its own, on a port of its own."""
    return multiprocess_dir() is not None


def launched_env() -> dict[str, str]:
    """What a launcher adds to the environment of a process it starts."""
    return {SERVED_BY_LAUNCHER_ENV: "1"} if served_by_launcher() else {}


def process_ended(pid: int) -> None:
    """A launched process ended: its live gauges (livesum, ...) leave the sums; its counters stay."""
    directory = multiprocess_dir()
    if directory is not None:
        mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
