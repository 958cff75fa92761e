from libs.db.migrations import run_migrations
from tests.libs.notes.tables import metadata

run_migrations(metadata)
