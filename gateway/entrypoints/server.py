"""The gateway's process: uvicorn (httptools; websockets for /v1/realtime) serving the Starlette app on the
running loop (uvloop, set by __main__), stopped the way every service stops: SIGTERM or SIGINT → close the
live sockets (1001), stop accepting, let the webhooks in flight finish (their publishes acked or failed),
then drain NATS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from gateway.config import GatewaySettings

if TYPE_CHECKING:
    from gateway.bootstrap import GatewayParts

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own handlers re-raise the signal after the shutdown (the process then dies by it):
        # `serve` below installs the loop's handlers instead, as libs.runtime does for the gRPC services.
        yield


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (the websockets library's sans-I/O one), except for a close sent while
    the socket's watcher is not reading: uvicorn would wait for it to read first, forever if it never
    does. Here the close frame goes behind the frames it has not read (a watcher cut off for being too
    slow learns why, and where to resume, once it catches up), and the connection is aborted if the close
    is not answered within the close timeout, so a watcher that never reads again holds nothing. And the
    websockets library's debug lines stay off: they print every header, a browser's key among them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.debug = False

    async def send(self, message: Any) -> None:
        if message["type"] != "websocket.close" or self.writable.is_set() or not self.handshake_complete:
            await super().send(message)
            return
        self.writable.set()  # only this close passes: nothing is sent after it
        await super().send(message)
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)


def server_config(settings: GatewaySettings, parts: GatewayParts) -> uvicorn.Config:
    return uvicorn.Config(
        parts.app,
        host=settings.http_host,
        port=settings.http_port,
        loop="none",  # the running one
        http="httptools",
        ws=WebSocketProtocol,  # /v1/realtime
        ws_max_size=4096,  # a watcher sends nothing: no message of its is worth holding
        lifespan="off",  # bootstrap opened what the app needs; `serve` closes it
        access_log=False,  # each webhook is counted in the metrics; paths hold instance ids
        log_config=None,  # uvicorn's lines go through the JSON handler of libs.logs
        server_header=False,
        timeout_keep_alive=settings.http_keep_alive_seconds,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
        limit_concurrency=settings.http_limit_concurrency,
    )


async def serve(
    settings: GatewaySettings,
    parts: GatewayParts,
    *,
    config: uvicorn.Config | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; `config` (the bench's, a test's) stands in for the settings' own;
    `stop` (a test's) stands in for the signals."""
    server = _Server(config or server_config(settings, parts))
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    watcher = asyncio.create_task(parts.outages.watch(stop), name="store-outages")
    serving = asyncio.create_task(server.serve(), name="http")
    log.info("ready", extra={"http": f"http://{settings.http_host}:{settings.http_port}"})
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, serving], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    log.info("draining")
    # Live sockets first, each closed 1001 with its resume position (uvicorn would close them 1012).
    await parts.realtime.go_away(settings.shutdown_grace_seconds / 2)
    server.should_exit = True
    await serving  # uvicorn waits for the requests in flight (up to the grace period)
    stopper.cancel()
    await asyncio.wait([watcher], timeout=1)
    watcher.cancel()
    await parts.close()
    log.info("stopped")
