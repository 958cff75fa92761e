from executor_service.infrastructure.tables import metadata
from libs.db.migrations import run_migrations

run_migrations(metadata)
