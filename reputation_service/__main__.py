from pathlib import Path

from libs.runtime import ServiceDefinition, main
from reputation_service.bootstrap import build
from reputation_service.config import ReputationSettings

main(ServiceDefinition("reputation_service", ReputationSettings, build, Path(__file__).parent / "migrations"))
