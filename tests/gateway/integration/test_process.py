"""`python -m gateway` as it is deployed: settings from GATEWAY_, JSON logs, ready once NATS and its stream
are, and SIGTERM stops it cleanly (exit 0), its live sockets closed 1001."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest
from nats.js import JetStreamContext

from libs.messaging.streams import delete_streams
from libs.seedwork.ids import new_id
from libs.testing.waiting import eventually
from tests.conftest import NATS_URL, ROOT
from tests.gateway.fake_ops import ServedOps, change, served_fake_ops
from tests.gateway.realtime_client import RealtimeGateway, closed, frames
from tests.sending_path import free_port
from whatlead.ops.v1 import ops_pb2


@pytest.fixture
async def own_root(jetstream: JetStreamContext, subject_root: str) -> AsyncIterator[str]:
    root = f"{subject_root}_gp{secrets.token_hex(2)}"
    yield root
    await delete_streams(jetstream, root, ("gateway",))


def environment(**settings: str) -> dict[str, str]:
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    return {**inherited, **{f"GATEWAY_{name.upper()}": value for name, value in settings.items()}}


def status(url: str, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0


def test_the_gateway_process_serves_then_stops_on_sigterm(own_root: str):
    port = free_port()
    env = environment(
        nats_url=NATS_URL,
        subject_root=own_root,
        http_port=str(port),
        webhook_master_key=secrets.token_hex(32),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while status(base + "/readyz") != 200:
            assert process.poll() is None and time.monotonic() < deadline, "the gateway never became ready"
            time.sleep(0.1)
        assert status(f"{base}/webhooks/waha/{new_id()}", b"{}") == 401  # unsigned
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0
    lines = [json.loads(line) for line in output.decode().splitlines()]
    assert [line["msg"] for line in lines if line["msg"] in ("ready", "draining", "stopped")] == [
        "ready",
        "draining",
        "stopped",
    ]
    assert all(line["service"] == "gateway" for line in lines)
    assert "Traceback" not in output.decode()


def test_without_a_master_key_it_refuses_to_start_and_says_which_variable():
    result = subprocess.run(
        [sys.executable, "-m", "gateway"], cwd=ROOT, env=environment(), capture_output=True, timeout=30
    )

    assert result.returncode == 2
    assert b"GATEWAY_WEBHOOK_MASTER_KEY" in result.stderr


async def test_sigterm_closes_each_live_socket_1001_with_its_resume_position(own_root: str):
    """The deployed process (uvloop, its WebSocket protocol, its signal handling) bridged to an OpsService
    of the test's: a socket open when SIGTERM comes is closed 1001, naming the last position it got."""
    port = free_port()
    async with served_fake_ops() as ops:
        org = new_id()
        key = ops.key(org)
        env = environment(
            nats_url=NATS_URL,
            subject_root=own_root,
            http_port=str(port),
            webhook_master_key=secrets.token_hex(32),
            ops_address=ops.address,
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL
        )
        try:
            base = f"http://127.0.0.1:{port}"
            await eventually(lambda: _ready(base), timeout=30)
            gateway = RealtimeGateway(f"ws://127.0.0.1:{port}")
            async with gateway.as_browser(key) as socket:
                await eventually(lambda: _watching(ops))
                await ops.service.publish(change(org, new_id(), ops_pb2.INTENT_CHANGE_KIND_SENT, 31))
                [frame] = await frames(socket, 1)
                process.send_signal(signal.SIGTERM)
                code, reason = await closed(socket)
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert frame["position"] == "31"
    assert (code, reason) == (1001, "going away: resume with after_position=31")


async def _ready(base: str) -> bool:
    return await asyncio.to_thread(status, base + "/readyz") == 200


async def _watching(ops: ServedOps) -> bool:
    return bool(ops.service.calls)
