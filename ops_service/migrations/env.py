from libs.db.migrations import run_migrations
from ops_service.infrastructure.tables import metadata

run_migrations(metadata)
