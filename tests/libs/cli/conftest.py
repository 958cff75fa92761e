from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from libs.cli.main import main
from tests.libs.cli.fake_services import (
    FakeService,
    running_fake_executor,
    running_fake_gate,
    running_fake_ops,
    running_fake_reputation,
)

API_KEY = "wl_abcd1234_" + "k" * 43
ROOT = Path(__file__).resolve().parents[3]

# Where the CLI looks for each service: none is inherited from the shell that runs the tests.
ADDRESS_VARIABLES = (
    "WHATLEAD_GATE_ADDR",
    "WHATLEAD_EXECUTOR_ADDR",
    "WHATLEAD_REPUTATION_ADDR",
    "WHATLEAD_OPS_ADDR",
    "WHATLEAD_NATS_URL",
    "WHATLEAD_GATEWAY_URL",
    "WHATLEAD_SIMULATOR_URL",
    "WHATLEAD_PROVIDER_URL",
    "WHATLEAD_LOCAL_DATA",
    "WHATLEAD_LOCAL_PORT_OFFSET",
    "WHATLEAD_OUTPUT",
    "WHATLEAD_TIMEOUT",
)

Whatlead = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """No key anywhere: not in the environment, no credentials file in the working directory."""
    for name in ("WHATLEAD_API_KEY", "WHATLEAD_CREDENTIALS", "WHATLEAD_ORG", *ADDRESS_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
async def ops(no_credentials, monkeypatch) -> AsyncIterator[FakeService]:
    async with running_fake_ops() as (fake, address):
        monkeypatch.setenv("WHATLEAD_OPS_ADDR", address)
        yield fake


@pytest.fixture
async def registry(no_credentials, monkeypatch) -> AsyncIterator[FakeService]:
    """A fake ReputationService (the instance registry) where the CLI looks for it."""
    async with running_fake_reputation() as (fake, address):
        monkeypatch.setenv("WHATLEAD_REPUTATION_ADDR", address)
        yield fake


@pytest.fixture
async def gate(no_credentials, monkeypatch) -> AsyncIterator[FakeService]:
    async with running_fake_gate() as (fake, address):
        monkeypatch.setenv("WHATLEAD_GATE_ADDR", address)
        yield fake


@pytest.fixture
async def executor(no_credentials, monkeypatch) -> AsyncIterator[FakeService]:
    async with running_fake_executor() as (fake, address):
        monkeypatch.setenv("WHATLEAD_EXECUTOR_ADDR", address)
        yield fake


@pytest.fixture
def whatlead(capsys) -> Whatlead:
    """Runs `whatlead` in a thread (its gRPC calls block; this loop serves the fake): code, stdout, stderr.
    A one-line error the CLI exits with (SystemExit with a message) comes back as code 1 and stderr."""

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = await asyncio.to_thread(main, list(args))
        except SystemExit as exit:
            if isinstance(exit.code, str):
                print(exit.code, file=sys.stderr)
                code = 1
            else:
                code = int(exit.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def interrupted(fake: FakeService, *args: str, once_printed: str) -> tuple[int, str, str]:
    """`whatlead *args` as its own process (Ctrl-C reaches only a main thread), given Ctrl-C once it follows
    a stream of `fake` and has printed a line holding `once_printed`: its exit status, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "libs.cli.main",
        *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    printed: list[str] = []
    try:
        async with asyncio.timeout(30):
            await fake.opened.wait()
            while not printed or once_printed not in printed[-1]:
                line = await process.stdout.readline()
                assert line, f"ended before printing {once_printed!r}: {''.join(printed)!r}"
                printed.append(line.decode())
            process.send_signal(signal.SIGINT)
            out, err = await process.communicate()
    finally:
        if process.returncode is None:  # it did not stop: leave nothing behind
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, "".join(printed) + out.decode(), err.decode()
