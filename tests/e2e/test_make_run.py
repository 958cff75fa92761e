"""`make run` as a newcomer meets it: the stack comes up on its embedded PostgreSQL, Redis and nats-server,
the CLI registers an instance (its typed event is in JetStream), `whatlead send` takes a message through the
Gate, the Executor and the provider simulator to SENT, the simulator's receipts come back through the
gateway to the job (READ), and Ctrl-C stops everything, leaving no process behind. Runs on its own data
folder and shifted ports."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from deploy.local import stack as launcher

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "WhatLead is ready"


@dataclass
class Stack:
    process: subprocess.Popen[str]
    offset: int
    output: list[str]
    data: Path

    def port(self, number: int) -> int:
        return number + self.offset

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "WHATLEAD_REPUTATION_ADDR": f"127.0.0.1:{self.port(50053)}",
            "WHATLEAD_GATE_ADDR": f"127.0.0.1:{self.port(50051)}",
            "WHATLEAD_EXECUTOR_ADDR": f"127.0.0.1:{self.port(50052)}",
            "WHATLEAD_NATS_URL": f"nats://127.0.0.1:{self.port(4322)}",
            "WHATLEAD_GATEWAY_URL": f"http://127.0.0.1:{self.port(8080)}",
            "WHATLEAD_PROVIDER_URL": f"http://127.0.0.1:{self.port(8090)}",
            "WHATLEAD_LOCAL_DATA": str(self.data),
            # The Demo organization's OWNER key `make run` wrote; the CLI acts for its organization.
            "WHATLEAD_CREDENTIALS": str(self.data / "credentials.json"),
        }

    def cli(self, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
        """`whatlead *args` with the Demo organization's key, or `key` (another organization's)."""
        return subprocess.run(
            [sys.executable, "-m", "libs.cli.main", *args],
            env={**self.env(), **({"WHATLEAD_API_KEY": key} if key else {})},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )

    def new_organization_key(self, name: str) -> str:
        """An OWNER key of a new organization, made through ops with the stack's service credential, as
        `make run` made the Demo one."""
        from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

        token = (self.data / "service-token").read_text().strip()
        metadata = (("authorization", f"Bearer {token}"),)
        with grpc.insecure_channel(f"127.0.0.1:{self.port(50054)}") as channel:
            ops = ops_pb2_grpc.OpsServiceStub(channel)
            organization = ops.CreateOrganization(
                ops_pb2.CreateOrganizationRequest(name=name, owner_user_id="e2e"),
                metadata=metadata,
                timeout=10,
            ).organization
            created = ops.CreateApiKey(
                ops_pb2.CreateApiKeyRequest(
                    organization_id=organization.id, name="e2e", role=ops_pb2.MEMBER_ROLE_OWNER
                ),
                metadata=metadata,
                timeout=10,
            )
        return created.secret


def eventually_shows(
    stack: Stack, expected: str, *args: str, timeout: float = 30, key: str | None = None
) -> str:
    """Repeat a CLI command until its output contains `expected` (events cross the broker meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        result = stack.cli(*args, key=key)
        if expected in result.stdout or time.monotonic() > deadline:
            assert expected in result.stdout, result.stdout + result.stderr
            return result.stdout
        time.sleep(0.3)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Process:
    pid: int
    started: int  # clock ticks after boot: with the pid, names the process even if the pid is reused
    name: str


def process_table() -> dict[int, tuple[int, Process]]:
    """Every live process by pid: its parent's pid and itself (from /proc/<pid>/stat)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (name) state ppid ... starttime ...": the name may hold spaces, the fields after it do not.
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), Process(int(entry.name), int(fields[19]), name))
    return table


def descendants(pid: int) -> set[Process]:
    """The processes `pid` started, their own children included (PostgreSQL's backends)."""
    table = process_table()
    found: set[Process] = set()
    parents = {pid}
    while parents:
        children = {process for parent, process in table.values() if parent in parents} - found
        found |= children
        parents = {process.pid for process in children}
    return found


def still_running(processes: set[Process]) -> set[Process]:
    table = process_table()
    return {process for process in processes if process.pid in table and table[process.pid][1] == process}


def launcher_environment(offset: int, data: Path) -> dict[str, str]:
    """The user's environment less any service setting (<PREFIX>_DATABASE_URL, GATE_REDIS_URL...): the stack
    runs on its embedded servers, as on a fresh machine."""
    services = ("REPUTATION_", "GATE_", "EXECUTOR_", "GATEWAY_")
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith(services)},
        "WHATLEAD_LOCAL_PORT_OFFSET": str(offset),
        "WHATLEAD_LOCAL_DATA": str(data),
    }


# Every port `make run` listens on before its offset (deploy/local/stack.py): NATS, PostgreSQL, Redis, the
# gateway, the simulator, then each service's gRPC and metrics ports.
STACK_PORTS = (4322, 5433, 6380, 8080, 8090, 50051, 50052, 50053, 50054, 9101, 9102, 9103, 9104)
START_ATTEMPTS = 3


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_offset() -> int:
    """An offset at which every port of the stack is free now. The gRPC ports land in the kernel's range
    of ephemeral ports, so any outgoing connection of another test may hold one."""
    while True:
        offset = 1000 * (1 + secrets.randbelow(12))  # keeps every port below 65536
        if all(bindable(port + offset) for port in STACK_PORTS):
            return offset


def start_stack(data: Path) -> tuple[subprocess.Popen[str], int, list[str]]:
    """The launcher, its offset and its output, once it printed that the stack is ready. A port taken
    between the check and the bind (by an outgoing connection elsewhere) costs a new start elsewhere."""
    for attempt in range(1, START_ATTEMPTS + 1):
        offset = free_offset()
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy.local"],
            cwd=ROOT,
            env=launcher_environment(offset, data),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output: list[str] = []
        deadline = time.monotonic() + 120
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line.rstrip())
            if READY_LINE in line:
                return process, offset, output
        stop(process)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in (data / "logs").glob("*.log"))
        if "Failed to bind" in logs and attempt < START_ATTEMPTS:
            shutil.rmtree(data, ignore_errors=True)
            continue
        pytest.fail("stack did not become ready:\n" + "\n".join(output) + "\n" + logs)
    raise AssertionError("unreachable")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    if not Path("/proc/self/stat").exists():
        pytest.skip("finds the stack's processes through /proc")
    data = tmp_path / "data"
    process, offset, output = start_stack(data)
    yield Stack(process, offset, output, data)
    stop(process)


def stop(launcher: subprocess.Popen[str]) -> None:
    """Ctrl-C, so a failed test leaves no server behind either; killed only if it will not stop."""
    if launcher.poll() is None:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.communicate()


def gateway_metrics(gateway_url: str) -> str:
    with urllib.request.urlopen(gateway_url + "/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_make_run_serves_the_registry_publishes_typed_events_and_stops_cleanly(stack: Stack):
    assert any(
        "reputation" in line and f"grpc 127.0.0.1:{stack.port(50053)}" in line for line in stack.output
    )
    # The servers are the embedded ones, on the stack's own ports, and each service has its database.
    assert any(
        line.startswith("postgres")
        and f"postgresql://127.0.0.1:{stack.port(5433)}" in line
        and "reputation, ops, gate, executor" in line
        for line in stack.output
    )
    assert any(line.startswith("redis") and f"127.0.0.1:{stack.port(6380)}" in line for line in stack.output)
    # The gateway: its URL printed, ready (NATS connected, its stream there), and its webhook master key
    # made once in the data folder, readable by its owner only.
    gateway_url = f"http://127.0.0.1:{stack.port(8080)}"
    assert any(line.startswith("gateway") and gateway_url in line for line in stack.output)
    with urllib.request.urlopen(gateway_url + "/readyz", timeout=5) as ready:
        assert ready.status == 200 and json.load(ready) == {"status": "ready"}
    master_key = stack.data / "webhook-master-key"
    assert len(master_key.read_text()) == 64 and master_key.stat().st_mode & 0o077 == 0
    # Ops serves, and the deployment's service token was made once, readable by its owner only.
    assert any(
        line.startswith("ops") and f"grpc 127.0.0.1:{stack.port(50054)}" in line for line in stack.output
    )
    service_token = stack.data / "service-token"
    assert len(service_token.read_text()) >= 40 and service_token.stat().st_mode & 0o077 == 0
    # ...and the first organization's OWNER key, for the CLI, where the launcher said.
    credentials = stack.data / "credentials.json"
    assert credentials.stat().st_mode & 0o077 == 0
    assert json.loads(credentials.read_text())["role"] == "OWNER"
    assert any(str(credentials) in line for line in stack.output)
    started = descendants(stack.process.pid)
    assert {"nats-server", "postgres", "redis-server"} <= {process.name for process in started}

    registered = stack.cli(
        "instances",
        "register",
        "--provider",
        "waha",
        "--ref",
        "e2e-1",
        "--phone",
        "+55 11 91234-5678",
        "--state",
        "connected",
    )
    assert registered.returncode == 0, registered.stderr
    instance = json.loads(registered.stdout)
    assert instance["phone"] == "5511912345678"

    rejected = stack.cli("instances", "register", "--provider", "waha", "--ref", "e2e-2", "--phone", "123")
    assert rejected.returncode == 64 + 3 and "INVALID_ARGUMENT" in rejected.stderr  # 64 + the gRPC code
    assert "phone" in rejected.stderr

    listed = stack.cli("instances", "list")
    assert instance["id"] in listed.stdout
    # With no address given, the CLI finds this stack (shifted ports) by the file it wrote in its data folder.
    found = subprocess.run(
        [sys.executable, "-m", "libs.cli.main", "-o", "json", "instances", "get", instance["id"]],
        env={
            **{k: v for k, v in stack.env().items() if not k.endswith(("_ADDR", "_URL"))},
            "WHATLEAD_LOCAL_PORT_OFFSET": str(stack.offset),
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["id"] == instance["id"]
    stack_file = json.loads((stack.data / "stack.json").read_text())
    assert stack_file["endpoints"]["reputation"] == f"127.0.0.1:{stack.port(50053)}"

    events = stack.cli("events", "--context", "reputation", "--nats", stack.env()["WHATLEAD_NATS_URL"])
    assert events.returncode == 0, events.stderr
    assert "whatlead.events.v1.InstanceRegistered" in events.stdout
    assert instance["id"] in events.stdout

    # One message's life: the Gate learns of the instance from the reputation stream, approves the intent
    # through it, the Executor sends it through the simulator, and the Gate hears it was sent. Its own
    # organization (its key made through ops), so the WAHA instance above (the stack has no WAHA endpoint)
    # is not a candidate.
    other = stack.new_organization_key("e2e-send")
    simulated = stack.cli(
        "instances",
        "register",
        "--provider",
        "simulator",
        "--ref",
        "e2e-sim",
        "--phone",
        "+5511955554444",
        "--state",
        "connected",
        key=other,
    )
    assert simulated.returncode == 0, simulated.stderr
    sender = json.loads(simulated.stdout)["id"]
    # What to give the provider: the instance's URL at the gateway and its secret...
    told = stack.cli("instances", "webhook", sender, "--master-key-file", str(master_key), key=other)
    assert told.returncode == 0, told.stderr
    given = dict(line.split(maxsplit=1) for line in told.stdout.splitlines()[:4] if line.strip())
    assert given["url"] == f"{gateway_url}/webhooks/simulator/{sender}"
    # ...which `--apply` sets on its simulator session, the key taken from the stack's data folder as a
    # newcomer runs it: the session's webhooks now go to the gateway, signed with the instance's secret.
    applied = stack.cli("instances", "webhook", sender, "--apply", key=other)
    assert applied.returncode == 0, applied.stderr
    assert given["url"] in applied.stdout and given["secret"] not in applied.stdout
    approved = eventually_shows(
        stack, "APPROVED", "send", "--to", "+5511988887777", "--text", "hello", key=other
    )
    intent_id = approved.split()[0]
    assert sender in approved
    eventually_shows(stack, "INTENT_STATUS_SENT", "intent", intent_id, key=other)
    job = eventually_shows(stack, "JOB_STATUS_SENT", "jobs", intent_id, key=other)
    assert '"attempts": 1' in job and '"provider_message_id"' in job
    # The simulator's receipts came back through the gateway: verified, normalized, stored, answered 200.
    read_through_gateway = (
        'whatlead_gateway_webhooks_total{kind="MESSAGE_READ",provider="SIMULATOR",status="200"}'
    )
    deadline = time.monotonic() + 30
    while read_through_gateway not in (metrics := gateway_metrics(gateway_url)):
        assert time.monotonic() < deadline, metrics
        time.sleep(0.3)
    assert "whatlead_gateway_verification_failures_total{" not in metrics
    # ...and the Executor heard them from the gateway's stream (the only way a job learns of a receipt).
    eventually_shows(stack, "DELIVERY_STATUS_READ", "jobs", intent_id, key=other)
    eventually_shows(stack, "delivery: READ", "intent", intent_id, key=other)

    # Ctrl-C: the launcher stops every child, PostgreSQL's backends included, and leaves no port behind.
    stack.process.send_signal(signal.SIGINT)
    remaining, _ = stack.process.communicate(timeout=60)
    assert stack.process.returncode == 0
    assert "stopped" in remaining
    assert not (stack.data / "stack.json").exists()  # a stopped stack is not found any more
    assert still_running(started) == set()
    for server_port in (4322, 5433, 6380, 50053, 50054, 8080):
        assert not port_open(stack.port(server_port)), server_port
    # PostgreSQL shut down cleanly (a fast shutdown, not a crash to recover from next time).
    assert "database system is shut down" in (stack.data / "logs" / "postgres.log").read_text()


SERVICE_DATABASES = (
    "REPUTATION_DATABASE_URL",
    "OPS_DATABASE_URL",
    "GATE_DATABASE_URL",
    "EXECUTOR_DATABASE_URL",
)


def test_exported_urls_win_and_the_servers_they_replace_are_not_started(monkeypatch: pytest.MonkeyPatch):
    for name in SERVICE_DATABASES:
        monkeypatch.setenv(name, f"postgresql+psycopg://app@db.internal/{name.split('_')[0].lower()}")
    monkeypatch.setenv("GATE_REDIS_URL", "redis://cache.internal:6379/0")

    servers, services = launcher.stages()

    assert [server.name for server in servers] == ["nats-server"]
    gate = next(s for s in services if s.name == "gate")
    assert gate.env["GATE_DATABASE_URL"] == "postgresql+psycopg://app@db.internal/gate"
    assert gate.env["GATE_REDIS_URL"] == "redis://cache.internal:6379/0"


def test_services_left_to_the_embedded_servers_get_a_database_each_and_redis(monkeypatch: pytest.MonkeyPatch):
    for name in (*SERVICE_DATABASES, "GATE_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REPUTATION_DATABASE_URL", "postgresql+psycopg://app@db.internal/reputation")

    servers, services = launcher.stages()

    assert [server.name for server in servers] == ["nats-server", "postgres", "redis"]
    databases = {s.name: s.env[f"{s.name.upper()}_DATABASE_URL"] for s in services if s.grpc_port}
    assert databases == {
        "reputation": "postgresql+psycopg://app@db.internal/reputation",
        "ops": launcher.postgres_url("ops"),
        "gate": launcher.postgres_url("gate"),
        "executor": launcher.postgres_url("executor"),
    }
    assert next(s for s in services if s.name == "gate").env["GATE_REDIS_URL"] == launcher.REDIS_URL
