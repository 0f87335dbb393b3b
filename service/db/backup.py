"""Backups of the service's database and their restore: SQLite's online backup API into a
single file, PostgreSQL's `pg_dump -Fc` and `pg_restore`. A backup holds every table,
the `alembic_version` row included, so it says which schema revision it is at."""

import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, inspect, literal, make_url, select, table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from service.db.engine import SQLITE_BUSY_TIMEOUT_MS
from service.db.migrate import alembic_config, current_revision, head_revision

SQLITE_HEADER = b"SQLite format 3\x00"
PG_DUMP_HEADER = b"PGDMP"
VERSION_TABLE = "alembic_version"


class BackupError(Exception):
    """A backup or restore that was refused or failed; the message is one line."""


@dataclass(frozen=True)
class Backup:
    """A backup file and the schema revision of the database it holds."""

    path: Path
    revision: str
    size_bytes: int


def backup(url: str, target: Path) -> Backup:
    """Write a consistent copy of the database at `url` to the new file `target`, while
    the service may keep writing to it."""
    if target.exists():
        raise BackupError(f"{target} exists: a backup never overwrites, give a new file name")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a directory")
    # Written beside the target and renamed at the end, so that a failed backup leaves
    # no file that looks like one.
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        if make_url(url).get_backend_name() == "sqlite":
            revision = _backup_sqlite(_sqlite_path(url), partial)
        else:
            revision = _dump_postgres(url, partial)
        partial.rename(target)
        _sync_directory(target.parent)
    finally:
        partial.unlink(missing_ok=True)
    return Backup(target, revision, target.stat().st_size)


def restore(url: str, source: Path, *, force: bool = False) -> Backup:
    """Restore the backup `source` into the database at `url`, which must hold no data
    unless `force` (then it is replaced). The service must not be running on it."""
    if not source.is_file():
        raise BackupError(f"{source}: no such backup file")
    if make_url(url).get_backend_name() == "sqlite":
        revision = _restore_sqlite(source, _sqlite_path(url), force)
    else:
        revision = _restore_postgres(source, url, force)
    return Backup(source, revision, source.stat().st_size)


def _sync_directory(directory: Path) -> None:
    """Make the rename durable: the file's own pages were synced when it was written
    (SQLite's commit of the copy; pg_dump syncs its output unless told not to)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def one_line(error: BaseException | None) -> str:
    """A driver's message, whose details may span lines (psycopg's do), on one line."""
    return " ".join(str(error).split())


def needs_upgrade(revision: str) -> bool:
    """Whether a database restored at `revision` must be migrated before the service runs."""
    return revision != head_revision()


# SQLite ------------------------------------------------------------------------------


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("BACKPROP_DATABASE_URL must name a SQLite file (sqlite:///path)")
    return Path(database)


def _open_sqlite(path: Path, what: str) -> sqlite3.Connection:
    """A connection to the existing SQLite database `path` (never creating one)."""
    with path.open("rb") as file:
        header = file.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise BackupError(f"{path} is not a SQLite database ({what})")
    connection = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=rw",
        uri=True,
        isolation_level=None,
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
    )
    connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    return connection


def _check_integrity(connection: sqlite3.Connection, path: Path) -> None:
    try:
        problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is damaged: {error}") from None
    if problems != ["ok"]:
        raise BackupError(f"{path} is damaged: {problems[0]}")


def _sqlite_revision(connection: sqlite3.Connection) -> str | None:
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
    ).fetchone()
    if found is None:
        return None
    row = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    return None if row is None else str(row[0])


def _backup_sqlite(database: Path, partial: Path) -> str:
    if not database.is_file():
        raise BackupError(f"no database at {database} (BACKPROP_DATABASE_URL)")
    source = _open_sqlite(database, "BACKPROP_DATABASE_URL")
    try:
        revision = _sqlite_revision(source)
        if revision is None:
            raise BackupError(f"{database} was never migrated: it holds no data of the service")
        copy = sqlite3.connect(partial, isolation_level=None)
        try:
            # All pages in one step: it reads one WAL snapshot (one read transaction),
            # which workers' commits do not block and cannot change. Copied in several
            # steps, the backup would start over after each commit of another process.
            source.backup(copy)
            # One self-contained file, with no -wal beside it.
            copy.execute("PRAGMA journal_mode = DELETE")
            _check_integrity(copy, partial)
        finally:
            copy.close()
    finally:
        source.close()
    return revision


def _readable_backup_revision(backup_file: sqlite3.Connection, source: Path) -> str:
    _check_integrity(backup_file, source)
    revision = _sqlite_revision(backup_file)
    if revision is None:
        raise BackupError(f"{source} is not a backup of the service (no {VERSION_TABLE} table)")
    _check_known(revision, source)
    return revision


def _check_known(revision: str, source: Path) -> None:
    """Refuse a backup whose revision this code has no migration for (a newer version's)."""
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        known = None
    if known is None:
        raise BackupError(
            f"{source} is at schema revision {revision}, unknown to this version of the "
            "service (it was made by a newer one): restore it with that version"
        )


def _restore_sqlite(source: Path, database: Path, force: bool) -> str:
    if database.exists() and source.samefile(database):
        raise BackupError(f"{source} is the database BACKPROP_DATABASE_URL names")
    backup_file = _open_sqlite(source, "the backup")
    try:
        revision = _readable_backup_revision(backup_file, source)
        if database.exists():
            _refuse_unless_empty(f"sqlite:///{database}", str(database), force)
        elif not database.parent.is_dir():
            raise BackupError(f"{database.parent} is not a directory (BACKPROP_DATABASE_URL)")
        target = sqlite3.connect(database, isolation_level=None)
        try:
            target.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            # Through SQLite, not a file copy: a copied file would not replace the pages
            # of an existing database's -wal file.
            backup_file.backup(target)
            target.execute("PRAGMA journal_mode = WAL")
            _check_integrity(target, database)
        finally:
            target.close()
    finally:
        backup_file.close()
    return revision


def _refuse_unless_empty(url: str, name: str, force: bool) -> bool:
    """Refuse a target that holds rows, unless `force`; return whether it has tables."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            names = inspect(connection).get_table_names()
            filled = [
                each
                for each in names
                if each != VERSION_TABLE
                and connection.scalar(select(literal(1)).select_from(table(each)).limit(1))
            ]
    except DBAPIError as error:
        raise BackupError(f"cannot read the database at {name}: {one_line(error.orig)}") from None
    finally:
        engine.dispose()
    if filled and not force:
        raise BackupError(
            f"the database at {name} holds data (table {filled[0]}): restore into an empty "
            "database, or add --force to replace it"
        )
    return bool(names)


# PostgreSQL --------------------------------------------------------------------------


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL as a libpq connection string for pg_dump/pg_restore, and their environment:
    the password travels in PGPASSWORD, not on the command line for `ps` to show."""
    parsed = make_url(url)
    environment = dict(os.environ)
    if parsed.password is not None:
        environment["PGPASSWORD"] = str(parsed.password)
    conninfo = parsed.set(drivername="postgresql", password=None)
    return conninfo.render_as_string(hide_password=False), environment


def _client_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found on PATH: install PostgreSQL's client programs")
    return found


def _run(command: list[str], environment: dict[str, str]) -> str:
    result = subprocess.run(command, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = lines[0] if lines else f"exit code {result.returncode}"
        raise BackupError(f"{Path(command[0]).name} failed: {reason}")
    return result.stdout


def _dump_postgres(url: str, partial: Path) -> str:
    try:
        revision = current_revision(url)
    except DBAPIError as error:
        raise BackupError(f"cannot use the database: {one_line(error.orig)}") from None
    if revision is None:
        raise BackupError("the database was never migrated: it holds no data of the service")
    conninfo, environment = _libpq(url)
    # pg_dump reads one snapshot (a repeatable-read transaction): consistent while
    # workers write. The custom format is compressed and what pg_restore reads.
    _run(
        [_client_tool("pg_dump"), "--format=custom", f"--file={partial}", f"--dbname={conninfo}"],
        environment,
    )
    return revision


def _dump_revision(source: Path, environment: dict[str, str]) -> str:
    """The revision in a pg_dump archive, read from its alembic_version data."""
    command = [_client_tool("pg_restore"), "--data-only", f"--table={VERSION_TABLE}"]
    script = _run([*command, "--file=-", str(source)], environment)
    found = re.search(rf"^COPY \S*{VERSION_TABLE} .*FROM stdin;\n(\w+)$", script, re.MULTILINE)
    if found is None:
        raise BackupError(f"{source} is not a backup of the service (no {VERSION_TABLE} row)")
    return found.group(1)


def _restore_postgres(source: Path, url: str, force: bool) -> str:
    with source.open("rb") as file:
        if file.read(len(PG_DUMP_HEADER)) != PG_DUMP_HEADER:
            raise BackupError(f"{source} is not a pg_dump archive (pg_dump --format=custom)")
    conninfo, environment = _libpq(url)
    revision = _dump_revision(source, environment)
    _check_known(revision, source)
    has_tables = _refuse_unless_empty(url, make_url(url).database or "?", force)
    command = [_client_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error"]
    # All or nothing; a migrated but empty database's tables are dropped first.
    command += ["--single-transaction", f"--dbname={conninfo}", str(source)]
    if has_tables:
        command[1:1] = ["--clean", "--if-exists"]
    _run(command, environment)
    return revision
