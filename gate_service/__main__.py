import asyncio
from pathlib import Path

import uvloop

from gate_service.bootstrap import build
from gate_service.config import GateSettings
from libs.runtime import ServiceDefinition, main

# uvloop: the Redis, PostgreSQL and NATS sockets of every decision cost less loop overhead (ADR 0011).
asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
# GATE_PROCESSES > 1: this process launches that many servers on the port (libs/processes.py).
main(ServiceDefinition("gate_service", GateSettings, build, Path(__file__).parent / "migrations"))
