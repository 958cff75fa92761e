import asyncio
import sys
from pathlib import Path

import uvloop

from gate_service.bootstrap import build
from gate_service.config import GateSettings
from gate_service.entrypoints.processes import run_processes
from libs.runtime import ServiceDefinition, main

MIGRATIONS = Path(__file__).parent / "migrations"

# uvloop: the Redis, PostgreSQL and NATS sockets of every decision cost less loop overhead (ADR 0011).
asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
settings = GateSettings.load()
if settings.processes > 1 and sys.argv[1:] in ([], ["serve"]):
    sys.exit(run_processes(settings, MIGRATIONS))
main(ServiceDefinition("gate_service", GateSettings, build, MIGRATIONS))
