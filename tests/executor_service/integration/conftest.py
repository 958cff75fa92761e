"""Fixtures the Executor's integration tests share: a provider simulator, a stream root of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from libs.provider_simulator import ProviderSimulator, run_simulator
from tests.executor_service.integration.harness import API_KEY, own_streams


@pytest.fixture
async def simulator() -> AsyncIterator[ProviderSimulator]:
    async with run_simulator(api_key=API_KEY) as sim:
        yield sim


@pytest.fixture
async def root(jetstream: Any, subject_root: str) -> AsyncIterator[str]:
    async with own_streams(jetstream, subject_root) as own:
        yield own
