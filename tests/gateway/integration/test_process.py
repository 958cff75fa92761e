"""`python -m gateway` as it is deployed: settings from GATEWAY_, JSON logs, ready once NATS and its stream
are, and SIGTERM stops it cleanly (exit 0)."""

from __future__ import annotations

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
from tests.conftest import NATS_URL, ROOT
from tests.sending_path import free_port


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
