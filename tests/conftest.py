"""Test harness shared by every tier.

Integration tests run against the real PostgreSQL, NATS JetStream and Redis of the machine. Each run gets
its own databases (wl_<run>_<name>), its own subject root (t<run>: streams T<run>_GATE, ...) and its own
Redis key prefix, and removes them at the end, because other runs share those servers. Locally a missing
server skips the tests that need it; under CI=true it fails the run.

A test is marked `integration` by what it needs, not by where it lives: if it uses a fixture that reaches a
server (directly or through fixtures of its own), and `e2e` if it lives under tests/e2e. So
`-m "not integration and not e2e"` runs everything that needs no server, and only that.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from libs.db.migrations import upgrade
from libs.providers import create_client_session

CI = os.environ.get("CI", "").lower() == "true"
RUN_ID = secrets.token_hex(4)
POSTGRES_ADMIN_URL = os.environ.get("WHATLEAD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("WHATLEAD_TEST_NATS", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("WHATLEAD_TEST_REDIS", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parent.parent


# The fixtures below that reach a server. A test's `fixturenames` is the closure of what it requests, so a
# fixture of a test module that builds on one of these marks its tests too.
SERVER_FIXTURES = frozenset({"postgres_databases", "migrated_database", "jetstream", "redis_client"})
E2E = ROOT / "tests" / "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        if item.path.is_relative_to(E2E):
            item.add_marker(pytest.mark.e2e)


def unavailable(what: str, error: BaseException) -> None:
    message = f"{what} is not reachable ({type(error).__name__}: {error})"
    if CI:
        pytest.fail(message + "; CI=true requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def run_id() -> str:
    return RUN_ID


@pytest.fixture(scope="session")
def subject_root() -> str:
    return f"t{RUN_ID}"


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    return f"wl:{RUN_ID}:"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """The providers' pooled HTTP session, as the Executor makes it (provider and simulator tests)."""
    session = create_client_session()
    yield session
    await session.close()


# --- PostgreSQL ---------------------------------------------------------------------------------------


def _admin_connect() -> Any:
    import psycopg

    return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[Callable[[str], str]]:
    """Factory: a fresh database for this run, as an async SQLAlchemy URL; dropped at the end."""
    try:
        _admin_connect().close()
    except Exception as exc:
        unavailable("PostgreSQL at " + POSTGRES_ADMIN_URL, exc)
    created: list[str] = []
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]

    def create(name: str) -> str:
        database = f"wl_{RUN_ID}_{name}_{len(created)}"
        with _admin_connect() as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        created.append(database)
        return base.replace("postgresql://", "postgresql+psycopg://") + "/" + database

    yield create
    with _admin_connect() as connection:
        for database in created:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_database(postgres_databases: Callable[[str], str]) -> Callable[[str], str]:
    """Factory: a fresh database with `service`'s migrations applied (those of `migrations_dir` if given,
    for a context that is not a service of the product)."""

    def create(service: str, migrations_dir: Path | None = None) -> str:
        url = postgres_databases(service.removesuffix("_service"))
        upgrade(url, migrations_dir or ROOT / service / "migrations")
        return url

    return create


# --- NATS JetStream -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def jetstream(subject_root: str) -> AsyncIterator[object]:
    """A JetStream context with this run's streams; the streams are deleted at the end."""
    import nats

    from libs.messaging.streams import delete_streams, ensure_streams

    try:
        client = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
    except Exception as exc:
        unavailable("NATS at " + NATS_URL, exc)
    js = client.jetstream()
    await ensure_streams(js, subject_root)
    yield js
    await delete_streams(js, subject_root)
    await client.close()


# --- Redis --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def redis_client(redis_prefix: str) -> AsyncIterator[object]:
    """A Redis client; every key under this run's prefix is deleted at the end."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        unavailable("Redis at " + REDIS_URL, exc)
    yield client
    async for key in client.scan_iter(match=redis_prefix + "*", count=1000):
        await client.delete(key)
    await client.aclose()


# --- the CLI ------------------------------------------------------------------------------------------

# The key `whatlead` presents in tests that run it against in-process services.
CLI_API_KEY = "wl_clitest0_" + "t" * 43


@pytest.fixture
def cli_credentials(monkeypatch: pytest.MonkeyPatch) -> str:
    """Gives `whatlead` its API key (every call carries one) and no other source of credentials."""
    monkeypatch.setenv("WHATLEAD_API_KEY", CLI_API_KEY)
    monkeypatch.delenv("WHATLEAD_CREDENTIALS", raising=False)
    return CLI_API_KEY
