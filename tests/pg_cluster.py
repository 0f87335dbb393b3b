"""A private PostgreSQL cluster in a directory of its own, for tests that stop and restart
the database server (never the shared one): `initdb` on first start, trust auth, 127.0.0.1
only, the same free port on every restart."""

import os
import shutil
import socket
import subprocess
from contextlib import suppress
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")


def find_pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory with `initdb` and `pg_ctl`."""
    if not PG_ROOT.is_dir():
        return None
    candidates = []
    for bin_dir in PG_ROOT.glob("*/bin"):
        if (bin_dir / "initdb").exists() and (bin_dir / "pg_ctl").exists():
            version = bin_dir.parent.name
            candidates.append((int(version) if version.isdigit() else 0, bin_dir))
    return max(candidates)[1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateCluster:
    """`initdb`/`pg_ctl` run as the `postgres` OS user when this process is root (initdb
    refuses root); the data directory is then owned by that user."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "data"
        self.log_file = self.base_dir / "postgresql.log"
        self.port = _free_port()
        self.running = False
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise RuntimeError(f"no PostgreSQL with initdb and pg_ctl under {PG_ROOT}")
        self.bin_dir = bin_dir

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, timeout: float = 120) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=timeout, cwd="/"
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited with {done.returncode}: {done.stderr.strip()}"
            )

    def _initdb(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base_dir, "postgres", "postgres")
            # The postgres user must reach it: temp dirs are 0700, so let others traverse
            # (not list) the directories above it.
            for parent in self.base_dir.resolve().parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o001)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        )

    def start(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "start",
            "-w",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        if mode not in ("fast", "immediate", "smart"):
            raise ValueError(f"unknown pg_ctl stop mode {mode!r}")
        self._run(str(self.bin_dir / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.data_dir))
        self.running = False

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def destroy(self) -> None:
        if self.running or (self.data_dir / "postmaster.pid").exists():
            with suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)
