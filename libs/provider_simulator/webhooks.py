"""Webhook delivery the way WAHA does it: JSON POSTs signed with `X-Webhook-Hmac` (hex HMAC-SHA512 of
the raw body), retried a few times, never allowed to take the server down."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

EventBuilder = Callable[[], dict[str, Any] | None]


def sign(body: bytes, secret: str) -> str:
    """WAHA's signature: hex HMAC-SHA512 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()


class WebhookSender:
    """Queues events due at a time and posts them with a bounded pool of workers.

    Events are built when due (so timestamps are real), queued (bounded: beyond `queue_size` they are
    dropped and counted) and posted with up to `attempts` tries and exponential backoff.
    """

    def __init__(
        self,
        *,
        url: str | None,
        secret: str,
        attempts: int,
        retry_base_s: float,
        concurrency: int,
        timeout_s: float,
        queue_size: int,
    ) -> None:
        self.url = url
        self.secret = secret
        self._attempts = attempts
        self._retry_base_s = retry_base_s
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._closed = True
        self._in_flight = 0
        self._last_warning = 0.0
        self.delivered = 0
        self.retried = 0
        self.failed = 0
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        return self.url is not None and not self._closed

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._concurrency)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        self._closed = False
        self._workers = [
            asyncio.create_task(self._work(), name=f"webhook-{i}") for i in range(self._concurrency)
        ]

    async def stop(self) -> None:
        self._closed = True
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def schedule(self, delay_s: float, build: EventBuilder) -> None:
        """Build and queue an event after `delay_s` seconds (cheap: one timer, no task)."""
        if not self.enabled:
            return
        asyncio.get_running_loop().call_later(max(delay_s, 0.0), self._due, build)

    def _due(self, build: EventBuilder) -> None:
        if not self.enabled:
            return
        try:
            event = build()
        except Exception:  # a bug in one event must not stop the others
            log.exception("webhook event could not be built")
            return
        if event is None:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            self._warn("webhook queue full; event dropped", dropped=self.dropped)

    def stats(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "delivered": self.delivered,
            "retried": self.retried,
            "failed": self.failed,
            "dropped": self.dropped,
            "pending": self._queue.qsize() + self._in_flight,
        }

    async def _work(self) -> None:
        while True:
            event = await self._queue.get()
            self._in_flight += 1
            try:
                await self._deliver(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one delivery kill a worker
                self.failed += 1
                log.exception("webhook delivery crashed")
            finally:
                self._in_flight -= 1

    async def _deliver(self, event: dict[str, Any]) -> None:
        url, secret, session = self.url, self.secret, self._session
        if url is None or session is None:
            return
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Request-Id": str(event.get("id", "")),
            "X-Webhook-Timestamp": str(int(time.time() * 1000)),
        }
        if secret:
            headers["X-Webhook-Hmac"] = sign(body, secret)
            headers["X-Webhook-Hmac-Algorithm"] = "sha512"
        for attempt in range(1, self._attempts + 1):
            outcome: str
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if 200 <= response.status < 300:
                        self.delivered += 1
                        return
                    outcome = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
            if attempt == self._attempts:
                self.failed += 1
                self._warn("webhook not delivered", event=event.get("event"), outcome=outcome, tries=attempt)
                return
            self.retried += 1
            await asyncio.sleep(self._retry_base_s * 2 ** (attempt - 1))

    def _warn(self, message: str, **fields: Any) -> None:
        # At most one warning a second: a dead receiver at thousands of events a second must not flood logs.
        now = time.monotonic()
        if now - self._last_warning >= 1.0:
            self._last_warning = now
            log.warning(message, extra={"webhook_" + key: value for key, value in fields.items()})
