"""`backprop db backup` and `backprop db restore`: what they refuse, each in one line with
exit code 1, and what they keep (data, schema revision). The backup of a database in use
is tests/jobs/test_backup_restore.py's."""

import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import make_url, select

from service.cli import main
from service.db import DatasetRow, make_engine, make_session_factory
from service.db.datasets import create_dataset
from service.db.migrate import current_revision, head_revision, upgrade
from tests.conftest import POSTGRES_URL_ENV, _fresh_postgres_database
from tests.helpers import free_port

OLDER_REVISION = "0003_labels_preprocessing"


@dataclass(frozen=True)
class Ran:
    returncode: int
    stderr: str


@pytest.fixture
def db_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Ran]:
    """`backprop db ...` on a database URL, run in this process (tests/jobs/
    test_backup_restore.py runs the command as a process of its own)."""

    def run(url: str, *args: str | Path) -> Ran:
        monkeypatch.setenv("BACKPROP_DATABASE_URL", url)
        capsys.readouterr()
        try:
            main(["db", *map(str, args)])
        except SystemExit as exit:
            # What the interpreter would do with it: print a message, exit 1.
            message = "" if exit.code is None or isinstance(exit.code, int) else f"{exit.code}\n"
            code = exit.code if isinstance(exit.code, int) else 1
            return Ran(code, capsys.readouterr().err + message)
        return Ran(0, capsys.readouterr().err)

    return run


def refused(result: Ran, message: str) -> bool:
    assert result.returncode == 1, result
    assert result.stderr == f"error: {message}\n", result.stderr
    return True


def add_dataset(url: str, name: str) -> None:
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            create_dataset(session, name, np.zeros((2, 1)), np.zeros((2, 1)), {"kind": "rows"})
    finally:
        engine.dispose()


def dataset_names(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            return sorted(session.scalars(select(DatasetRow.name)))
    finally:
        engine.dispose()


@pytest.fixture
def other_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty database of the same kind, never migrated."""
    if make_url(database_url).get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'other.db'}"
    else:
        yield from _fresh_postgres_database(os.environ[POSTGRES_URL_ENV])


def test_restore_refuses_a_database_holding_data_unless_forced_which_replaces_it(
    migrated_url: str,
    other_url: str,
    tmp_path: Path,
    db_command: Callable[..., Ran],
) -> None:
    add_dataset(migrated_url, "backed up")
    backup_file = tmp_path / "backup"
    made = db_command(migrated_url, "backup", backup_file)
    assert made.returncode == 0, made.stderr
    assert made.stderr.startswith(f"backup of revision {head_revision()} written to {backup_file}")

    upgrade(other_url)
    add_dataset(other_url, "already there")
    name = make_url(other_url).database
    assert refused(
        db_command(other_url, "restore", backup_file),
        f"the database at {name} holds data (table datasets): restore into an empty "
        "database, or add --force to replace it",
    )
    assert dataset_names(other_url) == ["already there"]

    forced = db_command(other_url, "restore", "--force", backup_file)
    assert forced.returncode == 0, forced.stderr
    assert forced.stderr == f"restored {backup_file} (revision {head_revision()})\n"
    assert dataset_names(other_url) == ["backed up"]
    assert current_revision(other_url) == head_revision()


def test_a_backup_never_overwrites_a_file(
    migrated_url: str, tmp_path: Path, db_command: Callable[..., Ran]
) -> None:
    existing = tmp_path / "existing"
    existing.write_text("keep me")
    assert refused(
        db_command(migrated_url, "backup", existing),
        f"{existing} exists: a backup never overwrites, give a new file name",
    )
    assert existing.read_text() == "keep me"


def test_restore_refuses_missing_files_and_files_that_are_not_backups(
    migrated_url: str,
    tmp_path: Path,
    db_command: Callable[..., Ran],
) -> None:
    missing = tmp_path / "missing"
    assert refused(db_command(migrated_url, "restore", missing), f"{missing}: no such backup file")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a database\n")
    if make_url(migrated_url).get_backend_name() == "sqlite":
        expected = f"{text_file} is not a SQLite database (the backup)"
    else:
        expected = f"{text_file} is not a pg_dump archive (pg_dump --format=custom)"
    assert refused(db_command(migrated_url, "restore", text_file), expected)


def test_sqlite_restore_refuses_a_database_of_something_else_or_of_a_newer_version(
    tmp_path: Path,
    db_command: Callable[..., Ran],
) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE things (x)")
    connection.close()
    assert refused(
        db_command(target, "restore", foreign),
        f"{foreign} is not a backup of the service (no alembic_version table)",
    )
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        connection.execute("INSERT INTO alembic_version VALUES ('9999_future')")
    connection.close()
    assert refused(
        db_command(target, "restore", newer),
        f"{newer} is at schema revision 9999_future, unknown to this version of the service "
        "(it was made by a newer one): restore it with that version",
    )
    assert not (tmp_path / "target.db").exists()
    missing_database = f"sqlite:///{tmp_path / 'none.db'}"
    assert refused(
        db_command(missing_database, "backup", tmp_path / "backup"),
        f"no database at {tmp_path / 'none.db'} (BACKPROP_DATABASE_URL)",
    )


def test_sqlite_backup_of_an_older_schema_restores_at_its_revision_then_upgrades(
    tmp_path: Path,
    db_command: Callable[..., Ran],
) -> None:
    old = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(old, OLDER_REVISION)
    add_dataset(old, "old data")
    backup_file = tmp_path / "old.backup"
    assert db_command(old, "backup", backup_file).returncode == 0
    # One self-contained file, checked by SQLite itself.
    with sqlite3.connect(backup_file) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    connection.close()

    new = f"sqlite:///{tmp_path / 'new.db'}"
    restored = db_command(new, "restore", backup_file)
    assert restored.returncode == 0, restored.stderr
    assert restored.stderr.splitlines() == [
        f"restored {backup_file} (revision {OLDER_REVISION})",
        "this version's schema is newer: run `backprop db upgrade` next",
    ]
    assert current_revision(new) == OLDER_REVISION
    assert db_command(new, "upgrade").returncode == 0
    assert current_revision(new) == head_revision()
    assert dataset_names(new) == ["old data"]


def test_backup_and_restore_against_an_unreachable_server_fail_in_one_line(
    tmp_path: Path, db_command: Callable[..., Ran]
) -> None:
    url = f"postgresql+psycopg://backprop@127.0.0.1:{free_port()}/none"
    made = db_command(url, "backup", tmp_path / "backup")
    assert made.returncode == 1
    assert made.stderr.startswith("error: cannot use the database: connection failed:")
    assert made.stderr.count("\n") == 1, made.stderr
    assert not (tmp_path / "backup").exists()
