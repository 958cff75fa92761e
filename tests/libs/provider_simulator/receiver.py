"""A local webhook endpoint that records what the simulator delivers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web


async def wait_until(check: Callable[[], bool], *, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    raw: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.raw)


class WebhookReceiver:
    """Records every webhook; can be told to answer 500 to the next N deliveries."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.refuse_next = 0
        self.refused = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.refuse_next:
            self.refuse_next -= 1
            self.refused += 1
            return web.Response(status=500)
        self.deliveries.append(Delivery(dict(request.headers), raw))
        return web.Response(status=200)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [d.event for d in self.deliveries if name is None or d.event["event"] == name]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhooks/waha", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/webhooks/waha"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
