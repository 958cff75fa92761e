"""The reputation database as its migrations build it: the schema the code declares, every table gone again
on downgrade, and `python -m reputation_service migrate` safe to start on many pods at once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from sqlalchemy import create_engine, inspect, text

from libs.db.migrations import downgrade, upgrade
from libs.testing.migrations import schema_drift, tables_of
from reputation_service.infrastructure.tables import metadata
from tests.conftest import ROOT

MIGRATIONS = ROOT / "reputation_service" / "migrations"
PODS = 4
BEFORE_PROVIDER_PROFILE = "7b2e3c4d5f60"  # the revision before instances kept provider version and engine
BEFORE_REPUTATION_STATES = "d5e6f7a8b9c0"  # the revision before reputations were kept per instance


def test_the_migrations_build_the_declared_schema_and_take_it_away(
    postgres_databases: Callable[[str], str],
) -> None:
    url = postgres_databases("reputation_schema")

    upgrade(url, MIGRATIONS)
    assert {"instances", "outbox", "inbox"} <= tables_of(url)
    assert schema_drift(url, metadata) == []

    downgrade(url, MIGRATIONS, "base")
    assert tables_of(url) == set()


def test_instances_registered_before_the_provider_profile_read_as_unknown(
    postgres_databases: Callable[[str], str],
) -> None:
    url = postgres_databases("reputation_profile")
    upgrade(url, MIGRATIONS, BEFORE_PROVIDER_PROFILE)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO instances (id, organization_id, display_name, provider,"
                    " provider_instance_ref, phone, purposes, connection_state, created_at, updated_at,"
                    " version) VALUES ('i-1', 'org', 'Sales', 'WAHA', 'sales-1', '5511987654321', 'DISPATCH',"
                    " 'CONNECTED', now(), now(), 3)"
                )
            )

        upgrade(url, MIGRATIONS)
        with engine.connect() as connection:
            kept = connection.execute(
                text("SELECT provider_version, provider_engine, version FROM instances WHERE id = 'i-1'")
            ).one()
        assert tuple(kept) == ("", "UNSPECIFIED", 3)

        downgrade(url, MIGRATIONS, BEFORE_PROVIDER_PROFILE)
        columns = {column["name"] for column in inspect(engine).get_columns("instances")}
        assert not {"provider_version", "provider_engine"} & columns
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM instances")).scalar() == 1
    finally:
        engine.dispose()


def test_instances_registered_before_reputations_were_kept_start_where_the_gate_placed_them(
    postgres_databases: Callable[[str], str],
) -> None:
    url = postgres_databases("reputation_states")
    upgrade(url, MIGRATIONS, BEFORE_REPUTATION_STATES)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO instances (id, organization_id, display_name, provider,"
                    " provider_instance_ref, phone, purposes, connection_state, created_at, updated_at,"
                    " version) VALUES ('i-1', 'org', 'Sales', 'WAHA', 'sales-1', '5511987654321', 'DISPATCH',"
                    " 'CONNECTED', now(), now(), 3)"
                )
            )

        upgrade(url, MIGRATIONS)
        with engine.connect() as connection:
            state = connection.execute(
                text(
                    "SELECT organization_id, score, health, phase, version, evaluated_at,"
                    " dirty_since IS NOT NULL AS due FROM reputation_states WHERE instance_id = 'i-1'"
                )
            ).one()
        # The Gate's defaults for a number it knows no reputation of; version 0 (announced by nobody) and due
        # for a first evaluation.
        assert tuple(state) == ("org", 70, "HEALTHY", "INTERACTING", 0, None, True)
    finally:
        engine.dispose()


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
