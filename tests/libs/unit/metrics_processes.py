"""Processes for test_metrics_multiprocess: `launcher N` serves the metrics and starts N `worker i`
processes as a service's launcher does; `worker i` counts i calls and holds i streams open. Each prints a
line when it is ready and runs until its standard input closes."""

from __future__ import annotations

import os
import subprocess
import sys

from prometheus_client import Counter, Gauge

from libs.metrics_endpoint import launched_env, process_ended, serve_metrics

CALLS = Counter("whatlead_test_calls_total", "Calls a worker counted")
STREAMS = Gauge("whatlead_test_streams", "Streams a worker holds open", multiprocess_mode="livesum")


def worker(index: int) -> None:
    CALLS.inc(index)
    STREAMS.inc(index)
    print("ready", flush=True)
    sys.stdin.read()


def launcher(count: int) -> None:
    port = serve_metrics(0, "127.0.0.1")
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.libs.unit.metrics_processes", "worker", str(index)],
            env={**os.environ, **launched_env()},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(1, count + 1)
    ]
    for process in workers:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    print(f"ready {port}", flush=True)
    sys.stdin.readline()  # a line: the first worker ends
    first = workers[0]
    first.communicate("")
    process_ended(first.pid)
    print("ended", flush=True)
    sys.stdin.read()
    for process in workers[1:]:
        process.communicate("")


if __name__ == "__main__":
    role, number = sys.argv[1], int(sys.argv[2])
    worker(number) if role == "worker" else launcher(number)
