"""Webhook delivery the way WAHA does it: JSON POSTs signed with `X-Webhook-Hmac` (hex HMAC-SHA512 of
the raw body), retried a few times, never allowed to take the server down.

Each session may have its own webhooks (WAHA's session `config.webhooks`: url, events, hmac key,
retries, custom headers); a session without them uses the simulator's global webhook, if any.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

EventBuilder = Callable[[], dict[str, Any] | None]
TargetsOf = Callable[[], Sequence["WebhookTarget"]]

# The W3C trace context of the send being answered (set per request by the server). Webhook events are
# scheduled with `call_later`, which runs them in a copy of the scheduling context: the acks of a message
# carry the traceparent its send came with, so a local run's webhook continues the message's trace. Real
# providers send none: there a webhook starts a trace of its own.
TRACE_HEADERS = ("traceparent", "tracestate")
received_trace: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "simulator_received_trace", default=()
)

# WAHA's retry policies (src/structures/webhooks.config.dto.ts, RetryPolicy).
RETRY_POLICIES = ("constant", "linear", "exponential")


def sign(body: bytes, secret: str) -> str:
    """WAHA's signature: hex HMAC-SHA512 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where one webhook goes and how: WAHA's `WebhookConfig` (url, events, hmac.key, retries,
    customHeaders). `events` None means every event (WAHA's "*")."""

    url: str
    events: frozenset[str] | None = None
    hmac_key: str = ""
    attempts: int = 4
    delay_s: float = 0.2
    policy: str = "exponential"
    custom_headers: tuple[tuple[str, str], ...] = ()

    def wants(self, event: str) -> bool:
        return self.events is None or event in self.events

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if self.policy == "constant":
            return self.delay_s
        if self.policy == "linear":
            return self.delay_s * attempt
        return self.delay_s * 2.0 ** (attempt - 1)

    @classmethod
    def from_waha(cls, config: Mapping[str, Any], *, attempts: int, delay_s: float) -> WebhookTarget:
        """A target from one entry of WAHA's `config.webhooks`; raises ValueError on a bad entry.

        `attempts` and `delay_s` are used when the entry has no `retries` (exponential, like the
        global webhook)."""
        url = config.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("webhooks[].url must be an http(s) URL")
        events = config.get("events")
        if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
            raise ValueError("webhooks[].events must be a list of event names")
        hmac_config = config.get("hmac")
        key = ""
        if hmac_config is not None:
            if not isinstance(hmac_config, dict) or not isinstance(
                hmac_config.get("key", ""), (str, type(None))
            ):
                raise ValueError("webhooks[].hmac must be {key: string}")
            key = hmac_config.get("key") or ""
        policy = "exponential"
        retries = config.get("retries")
        if retries is not None:
            if not isinstance(retries, dict):
                raise ValueError("webhooks[].retries must be an object")
            attempts = int(_number(retries, "attempts", attempts, minimum=1))
            delay_s = _number(retries, "delaySeconds", delay_s, minimum=0)
            policy = retries.get("policy") or "constant"  # WAHA's default policy is constant
            if policy not in RETRY_POLICIES:
                raise ValueError(f"webhooks[].retries.policy must be one of {list(RETRY_POLICIES)}")
        headers = config.get("customHeaders") or []
        if not isinstance(headers, list) or not all(
            isinstance(h, dict) and isinstance(h.get("name"), str) and isinstance(h.get("value"), str)
            for h in headers
        ):
            raise ValueError("webhooks[].customHeaders must be a list of {name, value}")
        return cls(
            url=url,
            events=None if "*" in events else frozenset(events),
            hmac_key=key,
            attempts=int(attempts),
            delay_s=float(delay_s),
            policy=policy,
            custom_headers=tuple((h["name"], h["value"]) for h in headers),
        )


def _number(values: Mapping[str, Any], name: str, default: float, *, minimum: float) -> float:
    value = values.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ValueError(f"webhooks[].retries.{name} must be a number >= {minimum:g}")
    return float(value)


class WebhookSender:
    """Queues events due at a time and posts them with a bounded pool of workers.

    Events are built when due (so timestamps are real), fanned out to the targets that want them,
    queued (bounded: beyond `queue_size` they are dropped and counted) and posted with each target's
    attempts and backoff. `url`/`secret` are the global default target.
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
        self.attempts = attempts
        self.retry_base_s = retry_base_s
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._queue: asyncio.Queue[tuple[dict[str, Any], WebhookTarget, tuple[tuple[str, str], ...]]] = (
            asyncio.Queue(maxsize=queue_size)
        )
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
        return not self._closed

    @property
    def default_target(self) -> WebhookTarget | None:
        """The global webhook (every event), or None without a global URL."""
        if self.url is None:
            return None
        return WebhookTarget(
            url=self.url, hmac_key=self.secret, attempts=self.attempts, delay_s=self.retry_base_s
        )

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

    def schedule(self, delay_s: float, build: EventBuilder, targets: TargetsOf) -> None:
        """Build an event after `delay_s` seconds and queue it for each of `targets()` that wants it
        (cheap: one timer, no task). Targets are read when due, so a webhook set meanwhile applies."""
        if not self.enabled:
            return
        asyncio.get_running_loop().call_later(max(delay_s, 0.0), self._due, build, targets)

    def _due(self, build: EventBuilder, targets: TargetsOf) -> None:
        if not self.enabled:
            return
        try:
            event = build()
        except Exception:  # a bug in one event must not stop the others
            log.exception("webhook event could not be built")
            return
        if event is None:
            return
        for target in targets():
            if not target.wants(str(event.get("event", ""))):
                continue
            try:
                self._queue.put_nowait((event, target, received_trace.get()))
            except asyncio.QueueFull:
                self.dropped += 1
                self._warn("webhook queue full; event dropped", dropped=self.dropped)

    def stats(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled and self.url is not None,
            "delivered": self.delivered,
            "retried": self.retried,
            "failed": self.failed,
            "dropped": self.dropped,
            "pending": self._queue.qsize() + self._in_flight,
        }

    async def _work(self) -> None:
        while True:
            event, target, trace_headers = await self._queue.get()
            self._in_flight += 1
            try:
                await self._deliver(event, target, trace_headers)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one delivery kill a worker
                self.failed += 1
                log.exception("webhook delivery crashed")
            finally:
                self._in_flight -= 1

    async def _deliver(
        self, event: dict[str, Any], target: WebhookTarget, trace_headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        session = self._session
        if session is None:
            return
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        headers = dict(target.custom_headers)
        headers.update(trace_headers)
        headers.update(
            {
                "Content-Type": "application/json",
                "X-Webhook-Request-Id": str(event.get("id", "")),
                "X-Webhook-Timestamp": str(int(time.time() * 1000)),
            }
        )
        if target.hmac_key:
            headers["X-Webhook-Hmac"] = sign(body, target.hmac_key)
            headers["X-Webhook-Hmac-Algorithm"] = "sha512"
        for attempt in range(1, target.attempts + 1):
            outcome: str
            try:
                async with session.post(target.url, data=body, headers=headers) as response:
                    await response.read()
                    if 200 <= response.status < 300:
                        self.delivered += 1
                        return
                    outcome = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
            if attempt == target.attempts:
                self.failed += 1
                self._warn("webhook not delivered", event=event.get("event"), outcome=outcome, tries=attempt)
                return
            self.retried += 1
            await asyncio.sleep(target.retry_delay(attempt))

    def _warn(self, message: str, **fields: Any) -> None:
        # At most one warning a second: a dead receiver at thousands of events a second must not flood logs.
        now = time.monotonic()
        if now - self._last_warning >= 1.0:
            self._last_warning = now
            log.warning(message, extra={"webhook_" + key: value for key, value in fields.items()})
