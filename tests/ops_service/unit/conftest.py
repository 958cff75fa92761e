"""Fixtures the ops unit tests share: an empty in-memory unit of work and a clock the test moves."""

from __future__ import annotations

import pytest

from libs.seedwork.clock import FakeClock
from tests.ops_service.unit.fakes import FakeOpsUnitOfWork


@pytest.fixture
def uow() -> FakeOpsUnitOfWork:
    return FakeOpsUnitOfWork()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
