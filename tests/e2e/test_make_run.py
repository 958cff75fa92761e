"""`make run` as a newcomer meets it: the stack comes up, the CLI registers an instance (its typed event is in
JetStream), `whatlead send` takes a message through the Gate, the Executor and the provider simulator to
SENT, and Ctrl-C stops everything. Runs on its own data folder and shifted ports."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "WhatLead is ready"


@dataclass
class Stack:
    process: subprocess.Popen[str]
    offset: int
    output: list[str]

    def port(self, number: int) -> int:
        return number + self.offset

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "WHATLEAD_REPUTATION_ADDR": f"127.0.0.1:{self.port(50053)}",
            "WHATLEAD_GATE_ADDR": f"127.0.0.1:{self.port(50051)}",
            "WHATLEAD_EXECUTOR_ADDR": f"127.0.0.1:{self.port(50052)}",
            "WHATLEAD_NATS_URL": f"nats://127.0.0.1:{self.port(4322)}",
            "WHATLEAD_ORG": "org-e2e",
        }

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "libs.cli.main", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )


def eventually_shows(stack: Stack, expected: str, *args: str, timeout: float = 30) -> str:
    """Repeat a CLI command until its output contains `expected` (events cross the broker meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        result = stack.cli(*args)
        if expected in result.stdout or time.monotonic() > deadline:
            assert expected in result.stdout, result.stdout + result.stderr
            return result.stdout
        time.sleep(0.3)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    offset = 1000 * (1 + secrets.randbelow(12))  # keeps every port below 65536
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.local"],
        cwd=ROOT,
        env={
            **os.environ,
            "WHATLEAD_LOCAL_PORT_OFFSET": str(offset),
            "WHATLEAD_LOCAL_DATA": str(tmp_path / "data"),
        },
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
            break
    if not any(READY_LINE in line for line in output):
        process.kill()
        logs = "\n".join(
            f"--- {p.name}\n{p.read_text()[-2000:]}" for p in (tmp_path / "data" / "logs").glob("*.log")
        )
        pytest.fail("stack did not become ready:\n" + "\n".join(output) + "\n" + logs)
    yield Stack(process, offset, output)
    if process.poll() is None:
        process.kill()
        process.wait()


def test_make_run_serves_the_registry_publishes_typed_events_and_stops_cleanly(stack: Stack):
    assert any(
        "reputation" in line and f"grpc 127.0.0.1:{stack.port(50053)}" in line for line in stack.output
    )

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
    assert rejected.returncode == 1 and "INVALID_ARGUMENT" in rejected.stderr and "phone" in rejected.stderr

    listed = stack.cli("instances", "list")
    assert instance["id"] in listed.stdout

    events = stack.cli("events", "--context", "reputation", "--nats", stack.env()["WHATLEAD_NATS_URL"])
    assert events.returncode == 0, events.stderr
    assert "whatlead.events.v1.InstanceRegistered" in events.stdout
    assert instance["id"] in events.stdout

    # One message's life: the Gate learns of the instance from the reputation stream, approves the intent
    # through it, the Executor sends it through the simulator, and the Gate hears it was sent. Its own
    # organization, so the WAHA instance above (the stack has no WAHA endpoint) is not a candidate.
    org = ("--org", "org-e2e-send")
    simulated = stack.cli(
        *org,
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
    )
    assert simulated.returncode == 0, simulated.stderr
    sender = json.loads(simulated.stdout)["id"]
    approved = eventually_shows(stack, "APPROVED", *org, "send", "--to", "+5511988887777", "--text", "hello")
    intent_id = approved.split()[0]
    assert sender in approved
    eventually_shows(stack, "INTENT_STATUS_SENT", *org, "intent", intent_id)
    job = eventually_shows(stack, "JOB_STATUS_SENT", *org, "jobs", intent_id)
    assert '"attempts": 1' in job and '"provider_message_id"' in job

    # Ctrl-C: the launcher stops every child and leaves no port behind.
    stack.process.send_signal(signal.SIGINT)
    remaining, _ = stack.process.communicate(timeout=60)
    assert stack.process.returncode == 0
    assert "stopped" in remaining
    assert not port_open(stack.port(4322)) and not port_open(stack.port(50053))
