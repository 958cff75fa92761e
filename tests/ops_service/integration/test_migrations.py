"""The ops database as its migrations build it: the schema the code declares, every table gone again on
downgrade."""

from __future__ import annotations

from collections.abc import Callable

from libs.db.migrations import downgrade, upgrade
from libs.testing.migrations import schema_drift, tables_of
from ops_service.infrastructure.tables import metadata
from tests.conftest import ROOT

MIGRATIONS = ROOT / "ops_service" / "migrations"


def test_the_migrations_build_the_declared_schema_and_take_it_away(
    postgres_databases: Callable[[str], str],
) -> None:
    url = postgres_databases("ops_schema")

    upgrade(url, MIGRATIONS)
    assert {"organizations", "members", "api_keys", "controls", "plans", "audit_entries"} <= tables_of(url)
    assert {"outbox", "inbox"} <= tables_of(url)
    assert {"timeline_events", "execution_counters"} <= tables_of(url)
    assert schema_drift(url, metadata) == []

    downgrade(url, MIGRATIONS, "base")
    assert tables_of(url) == set()
