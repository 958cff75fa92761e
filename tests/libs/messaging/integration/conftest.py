"""Fixtures of the messaging integration tests, which run on the notes context (tests/libs/notes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from libs.messaging.streams import delete_streams, ensure_streams
from tests.libs.notes.contract import CONTEXT


@pytest.fixture(scope="module")
async def notes_stream(jetstream: Any, subject_root: str) -> AsyncIterator[Any]:
    """The notes context's stream for this run, beside the services' ones."""
    await ensure_streams(jetstream, subject_root, (CONTEXT,))
    yield jetstream
    await delete_streams(jetstream, subject_root, (CONTEXT,))
