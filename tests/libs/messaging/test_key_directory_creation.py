"""The API key directory's bucket when several processes start at once (no servers: a stand-in for
JetStream that answers as it did when two processes created the bucket together)."""

from __future__ import annotations

from typing import Any

import pytest
from nats.js.errors import BadRequestError, BucketNotFoundError

from libs.messaging.key_directory import ensure_key_directory


class CreatedMeanwhile:
    """No bucket at the first look; by the create, another process has made it."""

    def __init__(self) -> None:
        self.bucket = object()
        self.looks = 0

    async def key_value(self, name: str) -> Any:
        self.looks += 1
        if self.looks == 1:
            raise BucketNotFoundError
        return self.bucket

    async def create_key_value(self, **config: Any) -> Any:
        raise BadRequestError(
            code=400, err_code=10065, description="subjects overlap with an existing stream"
        )


class NeverCreated(CreatedMeanwhile):
    async def key_value(self, name: str) -> Any:
        raise BucketNotFoundError


async def test_a_bucket_another_process_created_meanwhile_is_used() -> None:
    js = CreatedMeanwhile()

    assert await ensure_key_directory(js, "t") is js.bucket  # type: ignore[arg-type]


async def test_a_create_refused_for_another_reason_still_fails() -> None:
    with pytest.raises(BucketNotFoundError):
        await ensure_key_directory(NeverCreated(), "t")  # type: ignore[arg-type]
