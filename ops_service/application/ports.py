"""Ports the ops use cases need besides storage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from libs.seedwork.api_keys import IssuedKey
from ops_service.domain.api_key import ApiKey

KeyIssuer = Callable[[], IssuedKey]  # libs.seedwork.api_keys.issue_key; tests pass a predictable one


class KeyDirectory(Protocol):
    """Where every service looks keys up (libs.messaging.key_directory): the current record of each key."""

    async def put(self, key: ApiKey) -> None: ...
