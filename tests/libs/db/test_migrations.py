"""Every service's migrations build exactly the schema its code declares, and take it all away again, on
PostgreSQL (production) and on SQLite (the embedded default)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from libs.db.engine import sync_url
from libs.db.migrations import alembic_config, upgrade
from tests.conftest import ROOT

SERVICES = ["reputation_service", "gate_service", "executor_service"]


def declared_metadata(service: str):
    return importlib.import_module(f"{service}.infrastructure.tables").metadata


def schema_drift(database_url: str, service: str) -> list[object]:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        drift = compare_metadata(MigrationContext.configure(connection), declared_metadata(service))
    engine.dispose()
    return drift


def tables_left(database_url: str) -> set[str]:
    engine = create_engine(sync_url(database_url))
    names = set(inspect(engine).get_table_names()) - {"alembic_version"}
    engine.dispose()
    return names


def downgrade_to_base(database_url: str, service: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url, ROOT / service / "migrations"), "base")


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_the_declared_tables_on_postgres(service, postgres_databases):
    url = postgres_databases(f"mig_{service.removesuffix('_service')}")
    upgrade(url, ROOT / service / "migrations")
    assert {"outbox", "inbox"} <= tables_left(url)
    assert schema_drift(url, service) == []
    downgrade_to_base(url, service)
    assert tables_left(url) == set()


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_the_declared_tables_on_sqlite(service, tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path}/{service}.db"
    upgrade(url, ROOT / service / "migrations")
    assert schema_drift(url, service) == []
    downgrade_to_base(url, service)
    assert tables_left(url) == set()
