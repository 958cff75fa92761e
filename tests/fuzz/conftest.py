"""The fuzz tier: every RPC of every served service, hypothesis-driven, on real stores; and the gateway's
HTTP routes, schemathesis-driven from gateway/openapi.json (ADR 0032).

Budget (`make test` keeps it small, ~30 s on a 2-core box; `make fuzz` raises it):
  WHATLEAD_FUZZ_EXAMPLES  examples per RPC and per kind (generated messages, raw bytes), and per HTTP
                          operation and generation mode (positive, negative); default 100
  WHATLEAD_FUZZ_SEED      hypothesis seed; default 0, so CI repeats the same run (printed in the summary)

The status codes of the run, per service and RPC (or HTTP route), are printed at the end
(pytest_terminal_summary below).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.fuzz.outcomes import HISTOGRAM
from tests.fuzz.system import FuzzedSystem, LoopThread, fuzzed_system

EXAMPLES = int(os.environ.get("WHATLEAD_FUZZ_EXAMPLES", "100"))
SEED = int(os.environ.get("WHATLEAD_FUZZ_SEED", "0"))
SERVICES = ("reputation", "gate", "executor")

# Nothing fails inside hypothesis (each answer is recorded, the test asserts after the run), so there is
# nothing to shrink or replay: generation only, no example database, no deadline for a slow call.
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)


@pytest.fixture(scope="package")
def services_loop() -> Iterator[LoopThread]:
    with LoopThread("fuzzed-services") as loop:
        yield loop


@pytest.fixture(scope="package")
def fuzzed(
    services_loop: LoopThread,
    migrated_database: Callable[[str], str],
    subject_root: str,
    redis_prefix: str,
    jetstream: object,
    redis_client: object,
) -> Iterator[FuzzedSystem]:
    """Reputation, Gate and Executor on their own databases, streams and Redis prefix, seeded.

    `jetstream` and `redis_client` are asked for what they guarantee: the servers are there (or the run
    fails under CI=true), and this run's Redis keys are deleted at the end."""
    urls = {name: migrated_database(f"{name}_service") for name in SERVICES}
    running = fuzzed_system(urls, f"{subject_root}fz", redis_prefix)
    system = services_loop.call(running.__aenter__(), timeout=120)
    try:
        yield system
    finally:
        services_loop.call(running.__aexit__(None, None, None), timeout=60)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = HISTOGRAM.report()
    if not lines:
        return
    terminalreporter.section("fuzz: status codes per service and RPC (gateway: per route)")
    terminalreporter.write_line(f"examples per RPC (or HTTP operation) and kind: {EXAMPLES}, seed: {SEED}")
    for line in lines:
        terminalreporter.write_line(line)
