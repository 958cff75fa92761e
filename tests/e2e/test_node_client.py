"""A Node program on the TypeScript clients generated from protos/ (buf.gen.yaml, ts-proto on @grpc/grpc-js)
registers an instance, submits an intent and follows it to SENT against the `make run` stack: the contracts
serve a client in another language as they serve Python. Needs node and `npm ci` in tests/node (skipped
without them, failed under CI=true)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CI
from tests.e2e import test_make_run
from tests.e2e.test_make_run import ROOT, Stack

stack = test_make_run.stack  # the same `make run`, on its own ports and data folder
NODE_PROJECT = ROOT / "tests" / "node"
COMPILED_TESTS = NODE_PROJECT / "build" / "tests" / "node"


def missing(what: str) -> None:
    if CI:
        pytest.fail(f"{what}; CI=true requires it", pytrace=False)
    pytest.skip(what)


def run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture
def node_test() -> Path:
    """The Node test, compiled with clients generated from the protos as they are now."""
    if shutil.which("node") is None:
        missing("node is not installed")
    if not (NODE_PROJECT / "node_modules" / ".bin" / "protoc-gen-ts_proto").exists():
        missing("the Node tools are not installed: run `npm ci` in tests/node")
    run([sys.executable, "protos/generate_clients.py", "--language", "ts"], ROOT)
    shutil.rmtree(NODE_PROJECT / "build", ignore_errors=True)
    run([str(NODE_PROJECT / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], NODE_PROJECT)
    return COMPILED_TESTS


def test_a_node_client_submits_an_intent_and_follows_it_to_sent(node_test: Path, stack: Stack):
    result = subprocess.run(
        ["node", "--test", str(node_test)],
        cwd=NODE_PROJECT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "# pass 1" in result.stdout and "# fail 0" in result.stdout, result.stdout
