"""The Gate as `python -m gate_service` runs it, with its gRPC server built without an authenticator: the
"off" side of gate_submit_intent's authentication cost. Only a bench may serve a service this way."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import uvloop

import gate_service
from gate_service.bootstrap import build
from gate_service.config import GateSettings
from libs.runtime import ServiceDefinition, ServiceParts, main


async def build_without_authentication(settings: GateSettings) -> ServiceParts:
    return dataclasses.replace(await build(settings), authenticator=None)


if __name__ == "__main__":
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    migrations = Path(gate_service.__file__).parent / "migrations"
    main(ServiceDefinition("gate_service", GateSettings, build_without_authentication, migrations))
