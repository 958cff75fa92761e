import asyncio

import uvloop

from gateway.bootstrap import build, webhook_adapters
from gateway.config import GatewaySettings
from gateway.entrypoints.server import serve
from libs.logs import configure_logging
from libs.tracing import configure_tracing


async def run(settings: GatewaySettings) -> None:
    verifier, normalizer = webhook_adapters(settings)
    await serve(settings, await build(settings, verifier=verifier, normalizer=normalizer))


# uvloop: the webhook's sockets (HTTP in, NATS out) cost less loop overhead (ADR 0040).
asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
settings = GatewaySettings.load()
configure_logging("gateway", settings.log_level)
configure_tracing("gateway")  # off unless OTEL_TRACES_EXPORTER is set (docs/tracing.md)
asyncio.run(run(settings))
