"""The CLI as a script calls it: its version, the deadline it sends, usage and local failures, a server or
NATS that is down or silent (a clear error within --timeout), a reader that stops early (`| head -1`:
a quiet, clean exit), where it finds the services (flag > environment > `make run`'s stack file >
defaults), and the JSON of the commands that are not plain calls (webhook, sim, events)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from nats.js import JetStreamContext

from libs.cli import local_stack
from libs.cli.common import Endpoint, Options, endpoint, use_options
from libs.messaging import envelope
from libs.provider_simulator import run_simulator
from libs.webhooks import webhook_secret, webhook_url
from tests.libs.cli.conftest import API_KEY, ROOT
from tests.libs.cli.fake_services import Script
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import reputation_events_pb2
from whatlead.ops.v1 import ops_pb2
from whatlead.reputation.v1 import reputation_pb2

# Commands whose JSON this module tests (the plain calls are in test_json_output.py).
COVERED_THERE = ("instances webhook", "events", "sim scan", "sim logout", "sim ban")
INSTANCE_ID = "0193a1b2-0000-7000-8000-000000000001"
UNAVAILABLE = 64 + 14
GENEROUS = 30  # seconds: far more than any --timeout below, so only a hang fails


@pytest.fixture
def key(no_credentials, monkeypatch) -> None:
    monkeypatch.setenv("WHATLEAD_API_KEY", API_KEY)


@pytest.fixture(autouse=True)
def default_options() -> Iterator[None]:
    """A test that sets options (as `main` does) leaves the defaults behind it."""
    yield
    use_options(Options())


@pytest.fixture
def closed_port() -> int:
    """A port nobody listens on (refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never says a word (a hung server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


# --- version, deadline, usage --------------------------------------------------------------------------


async def test_version_prints_the_packages_version(whatlead):
    code, out, _ = await whatlead("--version")

    assert code == 0 and out == f"whatlead {importlib.metadata.version('whatlead')}\n"


async def test_timeout_is_each_calls_deadline(ops, key, whatlead):
    # Longer than the default (10 s), so what reaches the server can only be the flag's; roomy enough that
    # a busy machine never turns it into a DEADLINE_EXCEEDED.
    code, _, err = await whatlead("controls", "--timeout", "60")

    assert code == 0, err
    [call] = ops.calls
    assert call.time_remaining is not None and 10 < call.time_remaining <= 60


async def test_global_options_work_before_or_after_the_command(ops, key, whatlead):
    ops.answer("ListControls", ops_pb2.ListControlsResponse(controls=[ops_pb2.ExecutionControl(note="a")]))
    ops.answer("ListControls", ops_pb2.ListControlsResponse(controls=[ops_pb2.ExecutionControl(note="b")]))

    _, before, _ = await whatlead("-o", "json", "controls")
    _, after, _ = await whatlead("controls", "--output", "json")

    assert [json.loads(before), json.loads(after)] == [{"note": "a"}, {"note": "b"}]


async def test_usage_errors_exit_2_and_local_failures_1(ops, whatlead, no_credentials):
    assert (await whatlead("no-such-command"))[0] == 2
    assert (await whatlead("controls", "--timeout", "-1"))[0] == 2
    code, out, err = await whatlead("-o", "json", "controls")  # no API key anywhere
    assert (code, out) == (1, "") and err.startswith("error: no API key") and err.count("\n") == 1
    assert ops.calls == []


async def test_invalid_fields_are_one_line_and_exit_64_plus_invalid_argument(ops, key, whatlead):
    from google.rpc import code_pb2, error_details_pb2, status_pb2
    from grpc_status import rpc_status

    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="name", description="is required"),
            error_details_pb2.BadRequest.FieldViolation(field="role", description="is unknown"),
        ]
    )
    detail = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="bad request")
    detail.details.add().Pack(bad)
    status = rpc_status.to_status(detail)
    ops.refusal = (status.code, status.details)
    ops.refusal_trailers = tuple(status.trailing_metadata)

    code, _, err = await whatlead("keys", "create", "--name", "", "--role", "member")

    assert code == 64 + 3
    assert err == "error: INVALID_ARGUMENT: invalid fields: name: is required; role: is unknown\n"


async def test_nothing_found_exits_1_and_keeps_stdout_for_documents(executor, key, whatlead):
    code, out, err = await whatlead("-o", "json", "jobs", "i-1")

    assert (code, out) == (1, "") and err.startswith("no job for intent i-1")


# --- a server or NATS that is down ---------------------------------------------------------------------


async def test_a_server_that_refuses_is_unavailable_naming_where_it_was_looked_for(
    key, whatlead, closed_port
):
    async with asyncio.timeout(GENEROUS):
        code, out, err = await whatlead(
            "--ops-addr", f"127.0.0.1:{closed_port}", "--timeout", "2", "controls"
        )

    assert (code, out) == (UNAVAILABLE, "")
    assert err.startswith("error: UNAVAILABLE: ") and err.count("\n") == 1
    assert f"ops at 127.0.0.1:{closed_port} from --ops-addr" in err


async def test_a_silent_server_fails_within_the_timeout(key, whatlead, silent_port, monkeypatch):
    monkeypatch.setenv("WHATLEAD_OPS_ADDR", f"127.0.0.1:{silent_port}")

    async with asyncio.timeout(GENEROUS):
        call = await whatlead("--timeout", "1", "controls")
        stream = await whatlead("--timeout", "1", "watch")

    assert call[0] == 64 + 4 and call[2].startswith("error: DEADLINE_EXCEEDED: ")  # the call's deadline
    assert "from WHATLEAD_OPS_ADDR" in call[2]
    assert stream[0] == UNAVAILABLE  # a stream has no deadline: it waited --timeout for its connection
    assert stream[2] == (
        f"error: UNAVAILABLE: no connection to ops at 127.0.0.1:{silent_port} within 1 s "
        "(address from WHATLEAD_OPS_ADDR)\n"
    )


async def test_nats_down_or_silent_is_unavailable_within_the_timeout(whatlead, closed_port, silent_port):
    async with asyncio.timeout(GENEROUS):
        refused = await whatlead("events", "--nats", f"nats://127.0.0.1:{closed_port}", "--timeout", "2")
        silent = await whatlead("events", "--nats", f"nats://127.0.0.1:{silent_port}", "--timeout", "1")

    assert refused[0] == UNAVAILABLE and refused[1] == ""
    assert refused[2].startswith(f"error: UNAVAILABLE: cannot reach NATS at nats://127.0.0.1:{closed_port}")
    assert refused[2].count("\n") == 1 and "from --nats" in refused[2]
    assert silent[0] == UNAVAILABLE
    assert silent[2] == (
        f"error: UNAVAILABLE: cannot reach NATS at nats://127.0.0.1:{silent_port} within 1 s "
        "(address from --nats)\n"
    )


# --- a reader that stops early ------------------------------------------------------------------------


async def piped_into_head(*args: str, env: dict[str, str]) -> tuple[int, bytes, str]:
    """`whatlead *args | head -1` as two real processes: whatlead's exit status and stderr, head's line."""
    read_end, write_end = os.pipe()
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "libs.cli.main",
        *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
        stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
    )
    head = await asyncio.create_subprocess_exec("head", "-1", stdin=read_end, stdout=asyncio.subprocess.PIPE)
    os.close(read_end)
    os.close(write_end)
    try:
        async with asyncio.timeout(GENEROUS):
            line, _ = await head.communicate()
            _, err = await cli.communicate()
    finally:
        for process in (cli, head):
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert cli.returncode is not None
    return cli.returncode, line, err.decode()


async def test_a_watch_piped_into_head_exits_quietly(ops, key):
    # Far more than a pipe holds, so the watch is still writing when head has gone.
    changes = [
        ops_pb2.WatchIntentsResponse(position=str(n), change=ops_pb2.IntentChange()) for n in range(3000)
    ]
    ops.stream("WatchIntents", Script(changes, stay_open=True))

    code, line, err = await piped_into_head("-o", "json", "watch", env={})

    assert json.loads(line) == {"position": "0", "change": {}}
    assert (code, err) == (0, "")


# --- where the services are ---------------------------------------------------------------------------


@pytest.fixture
def stack_file(no_credentials) -> Path:
    """A stack file of a running `make run` (this process: it runs) in the working directory's .data."""
    return local_stack.write(
        no_credentials / ".data", 0, {"ops": "127.0.0.1:1111", "nats": "nats://127.0.0.1:2222"}
    )


def test_a_running_stacks_file_names_the_services_the_environment_and_flags_do_not(stack_file, monkeypatch):
    use_options(Options())
    assert endpoint("ops") == Endpoint("127.0.0.1:1111", ".data/stack.json")
    assert endpoint("nats").value == "nats://127.0.0.1:2222"
    assert endpoint("gate").value == "127.0.0.1:50051"  # not in the file: the default
    monkeypatch.setenv("WHATLEAD_OPS_ADDR", "10.0.0.5:50054")
    assert endpoint("ops").value == "10.0.0.5:50054"  # the environment wins over the file
    use_options(Options(addresses={"ops": "10.0.0.6:50054"}))
    assert endpoint("ops").value == "10.0.0.6:50054"  # and the flag over both
    assert endpoint("nats", "nats://10.0.0.7:4222", "--nats").value == "nats://10.0.0.7:4222"


def test_the_port_offset_shifts_the_defaults_and_passes_over_another_offsets_stack(stack_file, monkeypatch):
    use_options(Options())
    monkeypatch.setenv("WHATLEAD_LOCAL_PORT_OFFSET", "100")

    assert endpoint("ops").value == "127.0.0.1:50154"  # the file is the stack on offset 0: not this one
    assert endpoint("gateway").value == "http://127.0.0.1:8180"
    monkeypatch.setenv("WHATLEAD_LOCAL_PORT_OFFSET", "0")
    assert endpoint("ops").value == "127.0.0.1:1111"


def test_the_data_folder_is_where_the_stack_file_is_looked_for(no_credentials, monkeypatch):
    use_options(Options())
    local_stack.write(no_credentials / "e2e-data", 7, {"ops": "127.0.0.1:3333"})

    assert endpoint("ops").value == "127.0.0.1:50054"
    monkeypatch.setenv("WHATLEAD_LOCAL_DATA", str(no_credentials / "e2e-data"))
    assert endpoint("ops").value == "127.0.0.1:3333"


def test_the_file_of_a_stack_that_is_gone_is_ignored_and_only_its_writer_removes_it(no_credentials):
    use_options(Options())
    data = no_credentials / ".data"
    path = local_stack.write(data, 0, {"ops": "127.0.0.1:1111"})
    content = json.loads(path.read_text())

    path.write_text(json.dumps({**content, "pid": _gone_pid()}))
    assert endpoint("ops").value == "127.0.0.1:50054"
    local_stack.remove(data)  # not this process's file: left alone
    assert path.exists()
    path.write_text(json.dumps(content))
    local_stack.remove(data)
    assert not path.exists()


def _gone_pid() -> int:
    import subprocess

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    return int(finished.stdout)


async def test_the_cli_talks_to_the_stack_its_file_names(ops, key, whatlead, monkeypatch):
    address = os.environ["WHATLEAD_OPS_ADDR"]
    monkeypatch.delenv("WHATLEAD_OPS_ADDR")
    local_stack.write(Path(".data"), 0, {"ops": address})
    ops.answer("GetPlan", ops_pb2.GetPlanResponse(plan=ops_pb2.Plan(name="found")))

    code, out, err = await whatlead("-o", "json", "plan")

    assert code == 0, err
    assert json.loads(out) == {"name": "found"}


# --- the JSON of webhook, sim and events --------------------------------------------------------------

INSTANCE = reputation_pb2.Instance(
    id=INSTANCE_ID, provider=common_pb2.PROVIDER_SIMULATOR, provider_instance_ref="sales-1"
)


async def test_webhook_prints_the_url_and_secret_to_give_the_provider(registry, key, whatlead, monkeypatch):
    monkeypatch.setenv("WHATLEAD_WEBHOOK_MASTER_KEY", "m" * 64)
    registry.answer("GetInstance", reputation_pb2.GetInstanceResponse(instance=INSTANCE))

    code, out, err = await whatlead(
        "-o", "json", "instances", "webhook", INSTANCE_ID, "--gateway-url", "https://hooks.example"
    )

    assert code == 0, err
    assert json.loads(out) == {
        "instance_id": INSTANCE_ID,
        "provider": "simulator",
        "provider_instance_ref": "sales-1",
        "url": webhook_url("https://hooks.example", "simulator", INSTANCE_ID),
        "secret": webhook_secret(("m" * 64).encode(), INSTANCE_ID),
    }
    registry.refusal = (grpc.StatusCode.NOT_FOUND, "no such instance")
    assert (await whatlead("instances", "webhook", INSTANCE_ID))[0] == 64 + 5


@pytest.mark.parametrize(("action", "status"), [("scan", "WORKING"), ("logout", "FAILED"), ("ban", "FAILED")])
async def test_sim_prints_what_the_phone_did(registry, key, whatlead, monkeypatch, action, status):
    async with run_simulator(api_key="sim-key") as simulator:
        monkeypatch.setenv("WHATLEAD_SIMULATOR_URL", simulator.base_url)
        monkeypatch.setenv("WHATLEAD_SIMULATOR_API_KEY", "sim-key")
        if action == "scan":
            simulator.start_pairing("sales-1")  # a QR code showing
        else:
            simulator.session("sales-1")  # linked and working
        registry.answer("GetInstance", reputation_pb2.GetInstanceResponse(instance=INSTANCE))

        code, out, err = await whatlead("-o", "json", "sim", action, INSTANCE_ID)

    assert code == 0, err
    assert json.loads(out) == {
        "instance_id": INSTANCE_ID,
        "action": action,
        "session": "sales-1",
        "status": status,
    }
    registry.refusal = (grpc.StatusCode.PERMISSION_DENIED, "members only")
    assert (await whatlead("sim", action, INSTANCE_ID))[0] == 64 + 7


@pytest.fixture
async def event_stream(jetstream) -> AsyncIterator[tuple[JetStreamContext, str]]:
    """The reputation stream of a root of this test's own (what it publishes, no other test reads)."""
    from libs.messaging.streams import delete_streams, ensure_streams

    assert isinstance(jetstream, JetStreamContext)
    root = f"clitest{uuid.uuid4().hex[:10]}"
    await ensure_streams(jetstream, root, ("reputation",))
    yield jetstream, root
    await delete_streams(jetstream, root, ("reputation",))


def registered_event(n: int) -> reputation_events_pb2.InstanceRegistered:
    return reputation_events_pb2.InstanceRegistered(
        meta=common_pb2.EventMeta(event_id=str(uuid.uuid4())),
        instance=reputation_pb2.Instance(id=f"instance-{n}", provider_instance_ref=f"sales-{n}"),
    )


async def publish(
    js: JetStreamContext, root: str, events: list[reputation_events_pb2.InstanceRegistered]
) -> None:
    for event in events:
        encoded = envelope.encode(event)
        await js.publish(
            envelope.full_subject(root, encoded.subject_suffix),
            encoded.payload,
            headers={envelope.TYPE_HEADER: encoded.type_name, envelope.MSG_ID_HEADER: encoded.event_id},
        )


async def test_events_prints_one_document_per_event_and_a_missing_stream_is_not_found(event_stream, whatlead):
    from tests.conftest import NATS_URL

    js, root = event_stream
    events = [registered_event(1), registered_event(2)]
    await publish(js, root, events)

    code, out, err = await whatlead(
        "-o", "json", "events", "--nats", NATS_URL, "--root", root, "--wait", "0.2"
    )

    assert code == 0, err
    assert [
        (doc["subject"], doc["type"], doc["event"]["instance"]["id"])
        for doc in map(json.loads, out.splitlines())
    ] == [
        (f"{root}.reputation.instance.registered", "whatlead.events.v1.InstanceRegistered", "instance-1"),
        (f"{root}.reputation.instance.registered", "whatlead.events.v1.InstanceRegistered", "instance-2"),
    ]
    code, _, err = await whatlead(
        "events", "--nats", NATS_URL, "--root", f"{root}x", "--context", "reputation"
    )
    assert code == 64 + 5 and err.startswith(f"error: NOT_FOUND: no stream {root.upper()}X_REPUTATION")


async def test_events_piped_into_head_exits_quietly(event_stream):
    from tests.conftest import NATS_URL

    js, root = event_stream
    await publish(js, root, [registered_event(n) for n in range(600)])  # more than a pipe holds

    code, line, err = await piped_into_head(
        "events", "--nats", NATS_URL, "--root", root, env={"WHATLEAD_API_KEY": API_KEY}
    )

    assert line.startswith(f"# {root}.reputation.instance.registered".encode())
    assert (code, err) == (0, "")
