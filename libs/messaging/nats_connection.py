"""One NATS connection per process, reconnecting forever: an outage delays events, never loses them."""

from __future__ import annotations

import logging
from typing import Any

from nats.aio.client import Client

log = logging.getLogger(__name__)


async def connect_nats(url: str, *, name: str, connect_timeout: float = 2.0) -> Client:
    client = Client()

    async def disconnected() -> None:
        if not client.is_closed:  # closing it ourselves (shutdown) is not worth a warning
            log.warning("nats disconnected")

    async def reconnected() -> None:
        log.info("nats reconnected")

    async def error(exc: Exception) -> None:
        log.warning("nats error", extra={"error": type(exc).__name__})

    # Seconds, fractions meant: nats-py annotates these as int but waits on them as floats (asyncio).
    durations: dict[str, Any] = {"connect_timeout": connect_timeout, "reconnect_time_wait": 0.5}
    await client.connect(
        url,
        name=name,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
        **durations,
    )
    return client
