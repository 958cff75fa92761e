from pathlib import Path

from libs.runtime import ServiceDefinition, main
from ops_service.bootstrap import build
from ops_service.config import OpsSettings

main(ServiceDefinition("ops_service", OpsSettings, build, Path(__file__).parent / "migrations"))
