"""What every service's migration test checks: the revisions build the schema the code declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, inspect


def schema_drift(database_url: str, declared: MetaData) -> list[object]:
    """How the database differs from `declared` (tables, columns, indexes, constraints); [] if it does not."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            drift: list[object] = compare_metadata(MigrationContext.configure(connection), declared)
    finally:
        engine.dispose()
    return drift


def tables_of(database_url: str) -> set[str]:
    """The tables in the database, Alembic's own bookkeeping aside."""
    engine = create_engine(database_url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()
