from pathlib import Path

from gate_service.bootstrap import build
from gate_service.config import GateSettings
from libs.runtime import ServiceDefinition, main

main(ServiceDefinition("gate_service", GateSettings, build, Path(__file__).parent / "migrations"))
