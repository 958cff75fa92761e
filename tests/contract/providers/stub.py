"""A local HTTP server standing in for a provider: it records the exact requests it gets and answers
what each test scripts, as the real provider would (errors and slow answers included)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    json: Any


@dataclass
class Scripted:
    status: int = 200
    json: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class LocalHttpServer:
    """An aiohttp server on a free local port that hands every request of `method` to `_handle`."""

    method = "*"

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route(self.method, "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class ProviderStub(LocalHttpServer):
    """Answers each request with the next scripted answer (the last one repeats)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Recorded] = []
        self._answers: deque[Scripted] = deque()

    def reply(
        self,
        status: int = 200,
        json: Any = None,
        *,
        text: str | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        self._answers.append(Scripted(status, json, text, headers or {}, delay))

    def reset(self) -> None:
        """Forget the requests so far and the answers still scripted (the last one would repeat)."""
        self.requests.clear()
        self._answers.clear()

    @property
    def last(self) -> Recorded:
        assert self.requests, "the stub received no request"
        return self.requests[-1]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = await request.json() if raw else None
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query), CIMultiDict(request.headers), body)
        )
        if not self._answers:
            answer = Scripted(500, {"stub": "unscripted"})
        else:
            answer = self._answers.popleft() if len(self._answers) > 1 else self._answers[0]
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.text is not None:
            return web.Response(status=answer.status, text=answer.text, headers=answer.headers)
        return web.json_response(answer.json, status=answer.status, headers=answer.headers)
