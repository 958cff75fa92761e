"""Fixtures of the Gate's integration tests that stand below the gRPC harness."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gate_service.infrastructure.batching import GroupCommitWriter
from gate_service.infrastructure.proto_mapping import event_to_proto
from gate_service.infrastructure.tables import messaging
from libs.db.engine import create_engine
from libs.seedwork.clock import FakeClock


@pytest.fixture
async def engine(migrated_database: Callable[[str], str]) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh, migrated Gate database."""
    engine = create_engine(migrated_database("gate_service"))
    yield engine
    await engine.dispose()


@pytest.fixture
async def writer(engine: AsyncEngine) -> AsyncIterator[GroupCommitWriter]:
    """The group-commit writer on that database."""
    writer = GroupCommitWriter(engine, tables=messaging, to_message=event_to_proto, clock=FakeClock())
    yield writer
    await writer.close()
