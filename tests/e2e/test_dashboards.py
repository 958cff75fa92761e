"""The dashboards and rules against a real Prometheus scraping the `make run` stack: after a few messages
went through it (an instance on the provider simulator, messages sent to READ), every query of every panel
of every dashboard parses and returns data, and every recording and alerting rule loads and evaluates.

Prometheus is Debian's `prometheus` package (/usr/bin/prometheus): without it the test is skipped locally and
fails under CI=true. It scrapes each service's metrics port every second, with `job` = the service's name
as in production, and stops at the end."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import unavailable
from tests.e2e import test_make_run
from tests.e2e.test_make_run import Stack, eventually_shows
from tests.observability.artifacts import (
    RULE_FILES,
    SERVICES,
    PanelQuery,
    constants,
    dashboards,
    panel_queries,
    rules,
)
from tests.sending_path import free_port

stack = test_make_run.stack  # the same `make run`, on its own ports and data folder
MESSAGES = 3
# Grafana's own variables, as it would fill them for a dashboard showing the last few minutes.
GRAFANA_VARIABLES = {"datasource": "prometheus", "__rate_interval": "1m", "__range": "5m", "__interval": "1s"}


def metrics_targets(stack: Stack) -> dict[str, str]:
    """Each service's metrics address in the stack: the gRPC services' metrics ports, the gateway's HTTP."""
    ports = {"gate": 9101, "executor": 9102, "reputation": 9103, "ops": 9104, "gateway": 8080}
    assert set(ports) == set(SERVICES)
    return {job: f"127.0.0.1:{stack.port(port)}" for job, port in ports.items()}


@dataclass
class Prometheus:
    url: str

    def api(self, path: str, **form: str) -> Any:
        data = urllib.parse.urlencode(form).encode() if form else None
        try:
            with urllib.request.urlopen(self.url + path, data=data, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as refused:  # 400/422: a query that does not parse or evaluate
            return json.load(refused)

    def query(self, expr: str) -> Any:
        return self.api("/api/v1/query", query=expr)


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).is_file():
        unavailable("prometheus", FileNotFoundError("not installed: apt-get install prometheus"))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in RULE_FILES],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [address]}]}
            for job, address in metrics_targets(stack).items()
        ],
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        server = Prometheus(f"http://127.0.0.1:{port}")
        wait_for(
            lambda: every_target_up(server), 60, lambda: (tmp_path / "prometheus.log").read_text()[-3000:]
        )
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for(condition: Any, timeout: float, explain: Any = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, explain()
        time.sleep(0.5)


def every_target_up(server: Prometheus) -> bool:
    try:
        targets = server.api("/api/v1/targets")["data"]["activeTargets"]
    except (OSError, ValueError):
        return False  # not listening yet
    return {t["labels"]["job"] for t in targets if t["health"] == "up"} == set(SERVICES)


def scrapes_since(server: Prometheus, count: int) -> bool:
    """Every job scraped at least `count` times over the last minute."""
    result = server.query('min(count_over_time(up{job=~"' + "|".join(SERVICES) + '"}[1m]))')["data"]["result"]
    return bool(result) and float(result[0]["value"][1]) >= count


def send_a_few_messages(stack: Stack) -> None:
    """An organization with a number on the simulator, its receipts through the gateway, a few messages;
    then the reads of each service (jobs, timeline, metrics, instances)."""
    key = stack.new_organization_key("dashboards")
    registered = stack.cli(
        "instances",
        "register",
        "--provider",
        "simulator",
        "--ref",
        "dashboards-1",
        "--phone",
        "+5511955551111",
        "--state",
        "connected",
        key=key,
    )
    assert registered.returncode == 0, registered.stderr
    instance = json.loads(registered.stdout)["id"]
    applied = stack.cli("instances", "webhook", instance, "--apply", key=key)
    assert applied.returncode == 0, applied.stderr
    # The first is approved once the Gate knows the number; it is followed to READ. The next ones, this
    # soon after, wait for the number's minimum interval (QUEUED): decisions of both kinds.
    first = eventually_shows(stack, "APPROVED", "send", "--to", "+5511988880000", "--text", "hello", key=key)
    intent = first.split()[0]
    eventually_shows(stack, "DELIVERY_STATUS_READ", "jobs", intent, key=key)
    eventually_shows(stack, "delivery: READ", "intent", intent, key=key)
    for n in range(1, MESSAGES):
        sent = stack.cli("send", "--to", f"+551198888{n:04d}", "--text", f"hello {n}", key=key)
        assert sent.returncode == 0, sent.stderr
    for reads in (("timeline", intent), ("metrics", "--window", "1h"), ("instances", "list")):
        done = stack.cli(*reads, key=key)
        assert done.returncode == 0, done.stderr


def concrete(query: PanelQuery) -> str:
    return query.concrete(GRAFANA_VARIABLES | constants(dashboards()[query.dashboard]))


def test_every_panel_shows_data_and_every_rule_evaluates_on_the_running_stack(
    stack: Stack, prometheus: Prometheus
):
    send_a_few_messages(stack)
    wait_for(lambda: scrapes_since(prometheus, 3), 60)
    every_rule_loads_and_evaluates(prometheus)
    every_panel_shows_data(prometheus)


def every_panel_shows_data(prometheus: Prometheus) -> None:
    # Every query parses; the ones without data yet are asked again as scrapes and periodic passes come.
    queries = panel_queries()
    assert queries
    waiting: dict[str, PanelQuery] = {}
    for query in queries:
        answer = prometheus.query(concrete(query))
        assert answer["status"] == "success", (query, answer)
        waiting[concrete(query)] = query
    deadline = time.monotonic() + 60
    while waiting and time.monotonic() < deadline:
        for expr in list(waiting):
            if prometheus.query(expr)["data"]["result"]:
                del waiting[expr]
        time.sleep(1)
    assert not waiting, "no data:\n" + "\n".join(
        f"{q.dashboard} / {q.panel}: {e}" for e, q in waiting.items()
    )


def every_rule_loads_and_evaluates(prometheus: Prometheus) -> None:
    for rule in rules():
        answer = prometheus.query(rule["expr"])
        assert answer["status"] == "success", (rule, answer)
    # Prometheus loaded the same rules and evaluates them without error.
    wanted = {rule.get("record") or rule["alert"] for rule in rules()}

    def evaluated() -> dict[str, Any]:
        groups = prometheus.api("/api/v1/rules")["data"]["groups"]
        return {
            rule["name"]: rule
            for group in groups
            for rule in group["rules"]
            if not rule.get("lastEvaluation", "0001").startswith("0001")
        }

    wait_for(lambda: set(evaluated()) >= wanted, 30, lambda: wanted - set(evaluated()))
    loaded = evaluated()
    assert {name: loaded[name].get("lastError") for name in wanted if loaded[name].get("lastError")} == {}
    assert {loaded[name]["health"] for name in wanted} == {"ok"}
