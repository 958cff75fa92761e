"""Several processes of one service, one metrics port: with PROMETHEUS_MULTIPROC_DIR set, the launcher
serves what every process it started counted, summed, and nothing of a past run. Real processes (see
metrics_processes.py), scraped over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[3]


def start(directory: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    env.pop("WHATLEAD_METRICS_SERVED_BY_LAUNCHER", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.libs.unit.metrics_processes", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("whatlead_test_")
    }


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Path]:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    # A past run's worker: it counted 100 calls and died, leaving its file behind.
    past = start(metrics, "worker", "100")
    assert past.stdout is not None and past.stdout.readline().strip() == "ready"
    past.communicate("")
    assert any(metrics.glob("counter_*.db"))
    yield metrics


def test_one_scrape_shows_every_process_summed_and_nothing_of_a_past_run(directory: Path) -> None:
    launcher = start(directory, "launcher", "2")
    try:
        assert launcher.stdout is not None
        ready = launcher.stdout.readline().split()
        assert ready[0] == "ready", ready
        port = int(ready[1])
        # Worker 1 counted 1 call and holds 1 stream, worker 2 counted 2 and holds 2.
        assert scrape(port) == {"whatlead_test_calls_total": 3.0, "whatlead_test_streams": 3.0}
        assert launcher.stdin is not None
        launcher.stdin.write("\n")
        launcher.stdin.flush()
        assert launcher.stdout.readline().strip() == "ended"
        # Worker 1 ended: its streams leave the live sum, its calls stay counted.
        assert scrape(port) == {"whatlead_test_calls_total": 3.0, "whatlead_test_streams": 2.0}
    finally:
        launcher.communicate("", timeout=30)
