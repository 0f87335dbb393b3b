"""A private PostgreSQL cluster for tests that stop and restart the database server.

The shared server at 127.0.0.1:5432 is never touched: `PrivateCluster` runs `initdb` and
`pg_ctl` from the installed PostgreSQL on a free loopback port, in a directory of its own.
PostgreSQL refuses to run as root, so as root the commands run as the `postgres` user,
whose data directory is made in the system's temp directory (a test's `tmp_path` is
root's alone) and owned by it.
"""

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.pool import NullPool

from tests.helpers import free_port

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
START_TIMEOUT_SECONDS = 60
# Where binaries must be there: a CI run, or any run told to test on PostgreSQL.
REQUIRED_ENV = ("CI", "BACKPROP_TEST_POSTGRES_URL")


def find_pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory that has initdb and pg_ctl."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates = [
        path
        for path in Path("/").glob(PG_BIN_GLOB.lstrip("/"))
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file()
    ]
    return max(candidates, key=version, default=None)


def pg_bin_or_skip() -> Path:
    """`find_pg_bin()`, or the test fails (in CI, or with PostgreSQL configured) or is
    skipped (elsewhere) with the reason."""
    found = find_pg_bin()
    if found is not None:
        return found
    reason = f"no PostgreSQL server binaries (initdb, pg_ctl) under {PG_BIN_GLOB}"
    required = os.environ.get("CI") == "true" or os.environ.get("BACKPROP_TEST_POSTGRES_URL")
    if required:
        pytest.fail(f"{reason}; they are required here", pytrace=False)
    pytest.skip(reason)


class PrivateCluster:
    """A PostgreSQL cluster of its own: trust authentication, on 127.0.0.1 only, at the
    same port across restarts. Nothing runs until `start`."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.bin: Path | None = None
        self.data_dir: Path | None = None
        self.port = free_port()
        self.running = False
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log_file(self) -> Path:
        assert self.data_dir is not None, "not started yet"
        return self.data_dir / "server.log"

    def _run(self, tool: str, *args: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
        assert self.bin is not None
        command = [str(self.bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            logged = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}{logged[-4000:]}"
            )

    def _init(self) -> None:
        self.bin = find_pg_bin()
        if self.bin is None:
            raise RuntimeError(f"no initdb and pg_ctl under {PG_BIN_GLOB}")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            self.data_dir = Path(tempfile.mkdtemp(prefix="backprop-pg-"))
            shutil.chown(self.data_dir, "postgres", "postgres")
        else:
            self.data_dir = self.base_dir / "pgdata"
            self.data_dir.mkdir(mode=0o700)
        # A pointer for whoever looks at base_dir after a failure.
        (self.base_dir / "pgdata-location").write_text(f"{self.data_dir}\n")
        self._run(
            "initdb",
            "-D",
            str(self.data_dir / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        )

    def start(self) -> None:
        """initdb on the first start, then `pg_ctl start -w`."""
        if self.data_dir is None:
            self._init()
        assert self.data_dir is not None
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                # Its socket in its own directory: none in /var/run/postgresql.
                f"-c unix_socket_directories={self.data_dir}",
                # A test cluster: no fsync (a crash of the machine may lose it; a stop
                # with -m immediate is crash recovery from the same files).
                "-c fsync=off",
                "-c max_connections=100",
            ]
        )
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "-D",
            str(self.data_dir / "data"),
            "-l",
            str(self.log_file),
            "-o",
            options,
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m fast|immediate -w`."""
        assert mode in ("smart", "fast", "immediate"), mode
        assert self.data_dir is not None
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data_dir / "data"))
        self.running = False

    def create_database(self, name: str) -> str:
        """Create database `name` on the cluster and return its SQLAlchemy URL."""
        admin = create_engine(
            self.url,
            isolation_level="AUTOCOMMIT",
            poolclass=NullPool,
            connect_args={"connect_timeout": 10},
        )
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            admin.dispose()
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def destroy(self) -> None:
        """Stop the server at once if it runs, and remove its files."""
        if self.running:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.base_dir, ignore_errors=True)
