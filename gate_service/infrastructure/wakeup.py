"""Debounced wake-ups of the outbox relay: under load one publish pass serves many commits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class DebouncedWake:
    """Calls `wake` at most once per `delay` seconds, `delay` after the first request. The relay then
    publishes every commit of that window in one pass instead of one pass per commit."""

    def __init__(self, wake: Callable[[], None], delay: float) -> None:
        self._wake = wake
        self._delay = delay
        self._scheduled = False

    def __call__(self) -> None:
        if self._delay <= 0:
            self._wake()
            return
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self._delay, self._fire)

    def _fire(self) -> None:
        self._scheduled = False
        self._wake()
