"""`python -m libs.provider_simulator`: serve until SIGTERM/SIGINT.

The first line on stdout is `provider-simulator listening on http://HOST:PORT`, so a launcher that asked
for port 0 can read the port it got.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from libs.logs import configure_logging
from libs.provider_simulator.server import ProviderSimulator
from libs.provider_simulator.settings import SimulatorSettings, parse_settings

log = logging.getLogger("libs.provider_simulator")


async def serve(settings: SimulatorSettings) -> None:
    simulator = ProviderSimulator(settings)
    await simulator.start()
    # This line first, before any log line: launchers read the port from it.
    print(f"provider-simulator listening on {simulator.base_url}", flush=True)
    log.info(
        "provider simulator started",
        extra={"url": simulator.base_url, "webhooks": settings.webhook_url is not None},
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await simulator.stop()


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    configure_logging("provider-simulator", settings.log_level)
    try:
        asyncio.run(serve(settings))
    except OSError as exc:  # e.g. the port is taken
        print(f"provider-simulator could not start: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
