"""The gate database as its migrations build it: the schema the code declares (the kill-switch projection
included, as libs defines it), every table gone again on downgrade."""

from __future__ import annotations

from collections.abc import Callable

from gate_service.infrastructure.tables import metadata
from libs.db.migrations import downgrade, upgrade
from libs.testing.migrations import schema_drift, tables_of
from tests.conftest import ROOT

MIGRATIONS = ROOT / "gate_service" / "migrations"


def test_the_migrations_build_the_declared_schema_and_take_it_away(
    postgres_databases: Callable[[str], str],
) -> None:
    url = postgres_databases("gate_schema")

    upgrade(url, MIGRATIONS)
    assert tables_of(url) == set(metadata.tables)
    assert schema_drift(url, metadata) == []

    downgrade(url, MIGRATIONS, "base")
    assert tables_of(url) == set()
