"""Process lifecycle shared by every service: configure, migrate, serve, drain on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from libs.config import ServiceSettings
from libs.db.migrations import upgrade
from libs.logs import configure_logging
from libs.metrics_endpoint import serve_metrics
from libs.processes import ProcessesSettings, run_processes
from libs.rpc.auth import Authenticator
from libs.rpc.server import GrpcServer, ServicerBinding
from libs.stores import StoreOutages
from libs.tracing import configure_tracing

log = logging.getLogger(__name__)

# A loop that runs until the event is set: a coroutine function, since each runs as its own task.
Worker = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
S = TypeVar("S", bound=ServiceSettings)


@dataclass
class ServiceParts:
    """What a service's bootstrap hands to the runtime."""

    bindings: Sequence[ServicerBinding[Any]]
    workers: Sequence[Worker] = field(default_factory=list)
    close: Callable[[], Awaitable[None]] | None = None
    # The stores it needs: UNAVAILABLE answers and NOT_SERVING health during their outages (ADR 0009).
    outages: StoreOutages | None = None
    # Who may call (libs.rpc.auth): every service's server authenticates; libs.bootstrap gives it.
    authenticator: Authenticator | None = field(kw_only=True)


@dataclass(frozen=True)
class ServiceDefinition(Generic[S]):
    name: str
    settings_type: type[S]
    build: Callable[[S], Awaitable[ServiceParts]]
    migrations_dir: Path


async def serve(definition: ServiceDefinition[S], settings: S, *, ready: asyncio.Event | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    parts = await definition.build(settings)
    server = GrpcServer(
        parts.bindings,
        host=settings.grpc_host,
        port=settings.grpc_port,
        acceptors=settings.grpc_acceptors,
        max_receive_message_bytes=settings.grpc_max_receive_bytes,
        outages=parts.outages,
        authenticator=parts.authenticator,
    )
    port = await server.start()
    tasks = [
        asyncio.create_task(worker(stop), name=getattr(worker, "__qualname__", "worker"))
        for worker in parts.workers
    ]
    log.info("ready", extra={"grpc_port": port, "metrics_port": settings.metrics_port})
    if ready is not None:
        ready.set()
    # A worker that dies is a broken process: stop so the orchestrator restarts us.
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not stopper and task.exception() is not None:
            log.error("worker crashed, shutting down", exc_info=task.exception())
    stop.set()
    log.info("draining")
    await server.stop(settings.shutdown_grace_seconds)
    await asyncio.wait(tasks, timeout=settings.shutdown_grace_seconds)
    for task in tasks:
        task.cancel()
    if parts.close is not None:
        await parts.close()
    log.info("stopped")


def main(definition: ServiceDefinition[S]) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {definition.name}")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args()
    settings = definition.settings_type.load()
    if args.command == "serve" and isinstance(settings, ProcessesSettings) and settings.processes > 1:
        sys.exit(run_processes(definition.name, settings, settings.processes, definition.migrations_dir))
    configure_logging(definition.name, settings.log_level)
    configure_tracing(definition.name)  # off unless OTEL_TRACES_EXPORTER is set (docs/tracing.md)
    if args.command == "migrate" or settings.migrate_on_start:
        upgrade(settings.database_url, definition.migrations_dir)
        if args.command == "migrate":
            return
    serve_metrics(settings.metrics_port, settings.grpc_host)  # all processes' in multiprocess mode
    asyncio.run(serve(definition, settings))
