from pathlib import Path

from executor_service.bootstrap import build
from executor_service.config import ExecutorSettings
from libs.runtime import ServiceDefinition, main

main(ServiceDefinition("executor_service", ExecutorSettings, build, Path(__file__).parent / "migrations"))
