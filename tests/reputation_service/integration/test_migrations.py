"""The reputation database as its migrations build it: the schema the code declares, every table gone again
on downgrade, and `python -m reputation_service migrate` safe to start on many pods at once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from sqlalchemy import create_engine, text

from libs.db.migrations import downgrade, upgrade
from libs.testing.migrations import schema_drift, tables_of
from reputation_service.infrastructure.tables import metadata
from tests.conftest import ROOT

MIGRATIONS = ROOT / "reputation_service" / "migrations"
PODS = 4


def test_the_migrations_build_the_declared_schema_and_take_it_away(
    postgres_databases: Callable[[str], str],
) -> None:
    url = postgres_databases("reputation_schema")

    upgrade(url, MIGRATIONS)
    assert {"instances", "outbox", "inbox"} <= tables_of(url)
    assert schema_drift(url, metadata) == []

    downgrade(url, MIGRATIONS, "base")
    assert tables_of(url) == set()


def test_pods_migrating_at_once_all_succeed_on_a_fresh_database(
    postgres_databases: Callable[[str], str],
) -> None:
    url = postgres_databases("reputation_pods")
    environment = {**os.environ, "REPUTATION_DATABASE_URL": url, "REPUTATION_LOG_LEVEL": "WARNING"}
    pods = [
        subprocess.Popen(
            [sys.executable, "-m", "reputation_service", "migrate"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(PODS)
    ]
    outputs = [pod.communicate(timeout=60)[0].decode() for pod in pods]

    assert [pod.returncode for pod in pods] == [0] * PODS, "\n".join(outputs)
    engine = create_engine(url)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    engine.dispose()
    assert len(versions) == 1  # one head, recorded once
    assert schema_drift(url, metadata) == []
