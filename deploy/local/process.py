"""One process of the local stack: how it starts, when it is ready, and how it stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import grpc
from grpc_health.v1 import health_pb2

from libs.rpc.client import health_check


@dataclass(frozen=True)
class RunAs:
    """An unprivileged account a server runs under when `make run` runs as root (PostgreSQL refuses root)."""

    name: str
    uid: int
    gid: int


@dataclass
class Component:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    grpc_port: int | None = None
    http_port: int | None = None
    metrics_port: int | None = None
    # A server the services connect to (NATS, PostgreSQL, Redis): its port, and the line `make run` prints.
    server_port: int | None = None
    summary: str = ""
    # Polled until it answers True; by default gRPC health for a service, TCP for anything else.
    is_ready: Callable[[], bool] | None = None
    prepare: Callable[[], None] | None = None  # before the start, e.g. initdb
    provision: Callable[[], None] | None = None  # once ready, e.g. create the services' databases
    stop_signal: signal.Signals = signal.SIGTERM
    run_as: RunAs | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def ports(self) -> list[int]:
        return [p for p in (self.server_port, self.grpc_port, self.http_port, self.metrics_port) if p]

    def describe(self) -> str:
        parts = [f"{self.name:<20}"]
        if self.summary:
            parts.append(self.summary)
        if self.grpc_port:
            parts.append(f"grpc 127.0.0.1:{self.grpc_port}")
        if self.http_port:
            parts.append(f"http://127.0.0.1:{self.http_port}")
        if self.metrics_port:
            parts.append(f"metrics http://127.0.0.1:{self.metrics_port}/metrics")
        return "  ".join(parts)

    def ready(self) -> bool:
        if self.is_ready is not None:
            return self.is_ready()
        if self.grpc_port:
            return grpc_serving(self.grpc_port)
        return port_in_use(self.server_port or self.http_port or 0)

    def start(self, logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{self.name}.log").open("ab") as log_file:
            self.process = subprocess.Popen(
                self.command,
                env={**os.environ, **self.env},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the launcher only; it stops the children in order
                **privileges(self.run_as),
            )

    def wait_ready(self, timeout: float) -> bool:
        """Poll until ready; give up early when the process has already exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            if self.ready():
                return True
            time.sleep(0.1)
        return False

    def stop(self, timeout: float = 20) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(self.stop_signal)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Its whole session, so no child of it (a PostgreSQL backend) outlives it.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class Privileges(TypedDict):
    user: int | None
    group: int | None
    extra_groups: list[int] | None


def privileges(run_as: RunAs | None) -> Privileges:
    """subprocess arguments that run a child as `run_as` (supplementary groups dropped too), or as we are."""
    if run_as is None:
        return {"user": None, "group": None, "extra_groups": None}
    return {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def grpc_serving(port: int) -> bool:
    """Whether the gRPC server on `port` answers grpc.health.v1 with SERVING."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            response = health_check(channel)(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return response.status == health_pb2.HealthCheckResponse.SERVING
