"""Alembic, driven from code: each service keeps its own `migrations/` folder and its own database.

Every replica migrates at start-up, so `upgrade` holds a PostgreSQL advisory lock for the whole run: when
N pods start at once, one applies each revision and the others wait, then find the database at head.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, engine_from_config, pool, text
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

# Where `make migration` builds its scratch database when the service's <PREFIX>_DATABASE_URL is not set.
DEFAULT_SCRATCH_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def alembic_config(database_url: str, migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    # configparser would read '%' in a password as interpolation.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def migration_lock_key(migrations_dir: Path) -> int:
    """The advisory lock key of a service's migrations: the same in every replica, wherever it is
    installed (derived from the service's package name, not the path), as a signed 64-bit integer."""
    digest = hashlib.blake2b(f"whatlead.migrate:{migrations_dir.parent.name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


@contextmanager
def migration_lock(database_url: str, key: int) -> Iterator[None]:
    """Hold the advisory lock `key` on the database, on a connection of its own, until the block ends.
    A session-level lock: it outlives Alembic's transactions and goes with the connection if the process
    dies, so a crashed migrator never leaves the others waiting."""
    engine = create_engine(database_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            if not connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}):
                log.info("another process is migrating this database; waiting for it to finish")
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


def upgrade(database_url: str, migrations_dir: Path, revision: str = "head") -> None:
    """Bring the database to `revision`; safe to run from many processes at once."""
    with migration_lock(database_url, migration_lock_key(migrations_dir)):
        command.upgrade(alembic_config(database_url, migrations_dir), revision)


def downgrade(database_url: str, migrations_dir: Path, revision: str = "base") -> None:
    with migration_lock(database_url, migration_lock_key(migrations_dir)):
        command.downgrade(alembic_config(database_url, migrations_dir), revision)


def run_migrations(target_metadata: MetaData) -> None:
    """Body of every service's `migrations/env.py`."""
    config = context.config
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


@contextmanager
def scratch_database(server_url: str, name_hint: str) -> Iterator[str]:
    """A new, empty database on the server `server_url` points at (same credentials), dropped afterwards."""
    server = make_url(server_url)
    scratch = f"{name_hint}_scratch_{secrets.token_hex(4)}"
    # CREATE/DROP DATABASE cannot run in a transaction, nor from inside the database they name.
    admin = create_engine(
        server.set(database="postgres"), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{scratch}"'))
        try:
            yield server.set(database=scratch).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
    finally:
        admin.dispose()


def new_revision(service: str, message: str) -> None:
    """Autogenerate the next migration of `service` (`make migration SERVICE=gate_service MSG="add x"`), on a
    scratch database on the server of `<PREFIX>_DATABASE_URL` (GATE_DATABASE_URL for gate_service), else of
    `DEFAULT_SCRATCH_SERVER_URL`."""
    import importlib

    migrations_dir = Path(importlib.import_module(service).__file__ or "").parent / "migrations"
    prefix = service.removesuffix("_service").upper()
    autogenerate(
        migrations_dir, os.environ.get(f"{prefix}_DATABASE_URL", DEFAULT_SCRATCH_SERVER_URL), message
    )


def autogenerate(migrations_dir: Path, server_url: str, message: str) -> None:
    """Write the next revision of `migrations_dir`: the difference between the metadata its env.py declares
    and a scratch database brought to head, created on `server_url`'s server and dropped afterwards."""
    with scratch_database(server_url, migrations_dir.parent.name) as url:
        upgrade(url, migrations_dir)
        command.revision(alembic_config(url, migrations_dir), message=message, autogenerate=True)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m libs.db.migrations <service_package> <message>")
    new_revision(sys.argv[1], sys.argv[2])
