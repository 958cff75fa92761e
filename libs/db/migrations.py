"""Alembic, driven from code: each service keeps its own `migrations/` folder and its own database."""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, engine_from_config, pool
from sqlalchemy.engine import make_url

from libs.db.engine import sync_url


def alembic_config(database_url: str, migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    # configparser would read '%' in a password as interpolation.
    config.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, migrations_dir: Path, revision: str = "head") -> None:
    parsed = make_url(database_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url, migrations_dir), revision)


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
        # SQLite cannot ALTER most things in place; batch mode rebuilds tables instead.
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def new_revision(service: str, message: str) -> None:
    """Autogenerate the next migration of `service` by diffing its metadata against a scratch database
    at head (`make migration SERVICE=gate_service MSG="add x"`)."""
    import importlib
    import tempfile

    migrations_dir = Path(importlib.import_module(service).__file__ or "").parent / "migrations"
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{scratch}/scratch.db"
        upgrade(url, migrations_dir)
        command.revision(alembic_config(url, migrations_dir), message=message, autogenerate=True)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m libs.db.migrations <service_package> <message>")
    new_revision(sys.argv[1], sys.argv[2])
