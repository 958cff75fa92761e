"""The first change of a scope's control (or of a plan) inserts its row; two such changes at once race, and
the loser's insert is refused (AlreadyExists). Run again, it finds the row and changes it in turn."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from libs.seedwork.errors import AlreadyExists, FailedPrecondition

T = TypeVar("T")
ATTEMPTS = 3


async def settled(change: Callable[[], Awaitable[T]]) -> T:
    """`change` (a whole transaction) run again after losing a race, up to ATTEMPTS times in all."""
    for _ in range(ATTEMPTS - 1):
        try:
            return await change()
        except (AlreadyExists, FailedPrecondition):  # the row appeared, or changed, under this transaction
            continue
    return await change()
