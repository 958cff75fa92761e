"""`make run`: the whole system on embedded real servers, in the foreground, stopped cleanly by Ctrl-C.

Beside the services it starts, from wheels of the `local` extra, nats-server (JetStream in .data/nats),
PostgreSQL 18 (.data/postgres, one database per service) and Redis (the Gate's rate windows), each on a
port of its own so servers already running on the default ports are left alone. Each process writes its
logs to .data/logs/<name>.log. The gateway takes provider webhooks on port 8080; the key their secrets
are derived from is made once in .data/webhook-master-key, the deployment's service token in
.data/service-token, and the first organization's OWNER key in .data/credentials.json (ADR 0046). While
it runs, .data/stack.json says where everything listens, so the CLI finds this stack
(libs/cli/local_stack.py). What the operator exports wins: with
REPUTATION_DATABASE_URL=... set, reputation uses that server, and an embedded server no service uses is
not started.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from itertools import chain
from pathlib import Path

import grpc

from deploy.local.credentials import SERVICE_TOKEN_VARIABLE, ensure_credentials, service_token
from deploy.local.process import Component, port_in_use
from deploy.local.servers import EmbeddedPostgres, nats_server, redis_server
from libs.cli import local_stack

DATA = Path(os.environ.get("WHATLEAD_LOCAL_DATA", ".data"))
LOGS = DATA / "logs"
# Shifts every port, so a second stack (an end-to-end test) can run beside a developer's own.
PORT_OFFSET = int(os.environ.get("WHATLEAD_LOCAL_PORT_OFFSET", "0"))


def port(number: int) -> int:
    return number + PORT_OFFSET


# Beside the default ports (4222, 5432, 6379), where a developer's own servers may already run.
NATS_PORT = port(4322)
NATS_URL = f"nats://127.0.0.1:{NATS_PORT}"
POSTGRES_PORT = port(5433)
REDIS_PORT = port(6380)
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"


def service(name: str, prefix: str, grpc_port: int, metrics_port: int, **extra: str) -> Component:
    grpc_port, metrics_port = port(grpc_port), port(metrics_port)
    env = {
        f"{prefix}DATABASE_URL": postgres_url(name),
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


def postgres_url(database: str) -> str:
    return f"postgresql+psycopg://{EmbeddedPostgres.SUPERUSER}@127.0.0.1:{POSTGRES_PORT}/{database}"


SIMULATOR_PORT = 8090
GATEWAY_PORT = 8080
# Local-only credential shared by the simulator and its client, the executor. Production providers get
# real ones from the environment.
SIMULATOR_API_KEY = "local-simulator-key"


def simulator() -> Component:
    """The WhatsApp provider simulator (WAHA's API). No global webhook: the gateway takes webhooks only at
    an instance's own URL with its own secret, so each session is pointed there as a real WAHA session is
    (`whatlead instances webhook <id>`, then `python -m libs.provider_simulator.session_webhook`)."""
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
    ]
    return Component("provider-simulator", command, http_port=http_port)


MASTER_KEY_FILE = DATA / "webhook-master-key"


def webhook_master_key() -> str:
    """The key every instance's webhook secret is derived from (libs.webhooks): made once for this data
    folder and kept there (readable by its owner only), so the secrets pasted into providers stay valid
    across runs. One the operator exported for the gateway is given to reputation too."""
    if exported := os.environ.get("GATEWAY_WEBHOOK_MASTER_KEY"):
        return exported
    path = MASTER_KEY_FILE
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def with_webhook_master_key(component: Component, variable: str) -> Component:
    """Given the master key just before it starts, unless the operator exported one."""

    def prepare() -> None:
        component.env.setdefault(variable, webhook_master_key())

    component.prepare = prepare
    return component


def gateway() -> Component:
    """Provider webhooks in, canonical events out, live intent changes out (/v1/realtime); no database."""
    http_port = port(GATEWAY_PORT)
    env = {
        "GATEWAY_NATS_URL": NATS_URL,
        "GATEWAY_HTTP_PORT": str(http_port),
        "GATEWAY_OPS_ADDRESS": f"127.0.0.1:{port(50054)}",  # /v1/realtime streams ops' WatchIntents
    }
    env.update({key: value for key, value in os.environ.items() if key.startswith("GATEWAY_")})
    component = Component(
        "gateway",
        [sys.executable, "-m", "gateway"],
        env,
        http_port=http_port,
        summary=f"webhooks (secrets: whatlead instances webhook <id> --master-key-file {MASTER_KEY_FILE})",
        is_ready=lambda: answers_ok(f"http://127.0.0.1:{http_port}/readyz"),
    )
    return with_webhook_master_key(component, "GATEWAY_WEBHOOK_MASTER_KEY")


CREDENTIALS_FILE = DATA / "credentials.json"


def ops() -> Component:
    """Organizations, keys, the kill-switch, plans. Once it serves, the first organization and its OWNER key
    are made (or the kept ones checked) and written where the CLI finds them."""
    component = service("ops", "OPS_", 50054, 9104)

    def provision() -> None:
        address = f"127.0.0.1:{component.grpc_port}"
        try:
            kept = ensure_credentials(address, component.env[SERVICE_TOKEN_VARIABLE], CREDENTIALS_FILE)
        except grpc.RpcError as error:
            # The stack serves without them; the CLI then needs WHATLEAD_API_KEY.
            print(
                f"{'credentials':<20}  not written: ops answered {error.code().name} (see {LOGS}/ops.log)",
                flush=True,
            )
            return
        made = "" if kept else ' (new organization "Demo", OWNER key)'
        print(f"{'credentials':<20}  {CREDENTIALS_FILE}{made}: the CLI reads it from there", flush=True)

    component.provision = provision
    return component


def with_service_token(components: list[Component]) -> None:
    """Every WhatLead process gets the deployment's service credential (made once for the data folder)."""
    token = service_token(DATA)
    for component in components:
        component.env.setdefault(SERVICE_TOKEN_VARIABLE, token)


def answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stages() -> list[list[Component]]:
    """The servers, then the services. A stage starts together (the services' start-up is mostly Python
    importing and migrating, so starting them one by one would add those seconds up) and is awaited, and
    printed, in its order; a stage starts once the one before is ready."""
    services = [
        # Reputation hands each instance its webhook secret (`whatlead instances webhook <id>`). The local
        # stack's numbers are simulated: they start INTERACTING (where the Gate puts a number it knows no
        # reputation of), so `whatlead send` dispatches at once; export REPUTATION_THRESHOLDS to see a
        # real number's warm-up from NEWBORN.
        with_webhook_master_key(
            service(
                "reputation",
                "REPUTATION_",
                50053,
                9103,
                REPUTATION_THRESHOLDS=json.dumps({"initial_phase": "INTERACTING"}),
                # ConnectInstance: sessions at the simulator, their webhooks to this gateway.
                REPUTATION_SIMULATOR_URL=f"http://127.0.0.1:{port(SIMULATOR_PORT)}",
                REPUTATION_SIMULATOR_API_KEY=SIMULATOR_API_KEY,
                REPUTATION_GATEWAY_PUBLIC_URL=f"http://127.0.0.1:{port(GATEWAY_PORT)}",
            ),
            "REPUTATION_WEBHOOK_MASTER_KEY",
        ),
        ops(),
        # Starts even while reputation and ops are not serving yet: it rebuilds from them in the background.
        service(
            "gate",
            "GATE_",
            50051,
            9101,
            GATE_REPUTATION_ADDR=f"127.0.0.1:{port(50053)}",
            GATE_OPS_ADDR=f"127.0.0.1:{port(50054)}",
            GATE_REDIS_URL=REDIS_URL,
        ),
        simulator(),
        service(
            "executor",
            "EXECUTOR_",
            50052,
            9102,
            EXECUTOR_SIMULATOR_URL=f"http://127.0.0.1:{port(SIMULATOR_PORT)}",
            EXECUTOR_SIMULATOR_API_KEY=SIMULATOR_API_KEY,
        ),
        gateway(),
    ]
    # An embedded server starts only for the services the operator did not point elsewhere.
    servers = [nats_server(DATA, NATS_PORT)]
    databases = [s.name for s in services if postgres_url(s.name) in s.env.values()]
    if databases:
        servers.append(EmbeddedPostgres(DATA, POSTGRES_PORT, databases).component)
    if any(REDIS_URL in s.env.values() for s in services):
        servers.append(redis_server(DATA, REDIS_PORT))
    return [servers, services]


def endpoints() -> dict[str, str]:
    """Where the CLI finds this stack (libs/cli/local_stack.py): written to the data folder at start."""
    return {
        "gate": f"127.0.0.1:{port(50051)}",
        "executor": f"127.0.0.1:{port(50052)}",
        "reputation": f"127.0.0.1:{port(50053)}",
        "ops": f"127.0.0.1:{port(50054)}",
        "nats": NATS_URL,
        "gateway": f"http://127.0.0.1:{port(GATEWAY_PORT)}",
        "simulator": f"http://127.0.0.1:{port(SIMULATOR_PORT)}",
    }


STARTUP_TIMEOUT_SECONDS = 30
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def main() -> None:
    parts = stages()
    with_service_token(parts[-1])
    busy = [f"{c.name} {number}" for c in chain(*parts) for number in c.ports if port_in_use(number)]
    if busy:
        raise SystemExit(f"ports already in use: {', '.join(busy)}; is another `make run` still up?")
    started: list[Component] = []
    interrupted = False

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # SIGINT explicitly: a shell script that starts us in the background has it ignored, and `kill -INT`
    # must still stop the stack as Ctrl-C does. SIGHUP: a closed terminal stops it too, servers included.
    for stop_request in STOP_SIGNALS:
        signal.signal(stop_request, on_signal)
    try:
        local_stack.write(DATA, PORT_OFFSET, endpoints())
        for stage in parts:
            bring_up(stage, started)
        print(f"WhatLead is ready. Logs in {LOGS}/. Press Ctrl-C to stop.", flush=True)
        watch(started)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # A second Ctrl-C must not cut the stop short and leave servers behind; each stop is bounded.
        for stop_request in STOP_SIGNALS:
            signal.signal(stop_request, signal.SIG_IGN)
        # Services drain before the servers they write to go.
        for component in reversed(started):
            component.stop()
        local_stack.remove(DATA)
        print("stopped" if interrupted else "stopped after an error", flush=True)


def bring_up(stage: list[Component], started: list[Component]) -> None:
    """Start a stage's components together, then wait for each in order and print its line."""
    for component in stage:
        if component.prepare is not None:
            component.prepare()
        started.append(component)  # before the start: an interrupt in between still stops it
        component.start(LOGS)
    for component in stage:
        if not component.wait_ready(STARTUP_TIMEOUT_SECONDS):
            raise SystemExit(f"{component.name} did not become ready; see {LOGS}/{component.name}.log")
        print(component.describe(), flush=True)
        if component.provision is not None:
            component.provision()


def watch(started: list[Component]) -> None:
    """Until Ctrl-C: a component that exits on its own stops the whole stack."""
    while True:
        for component in started:
            if component.process is not None and (code := component.process.poll()) is not None:
                raise SystemExit(f"{component.name} exited with {code}; see {LOGS}/{component.name}.log")
        time.sleep(0.5)
