"""What a failed database call means: a full database is told apart from other errors,
and its reason is the driver's first line, without SQLAlchemy's statement and values."""

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from service.db.failures import is_storage_full, reason


def test_a_full_sqlite_database_is_storage_full_and_says_so_in_one_short_line(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'full.db'}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE blobs (data BLOB)"))
            # The database may not grow past its current pages: as if the disk were full.
            pages = connection.execute(text("PRAGMA page_count")).scalar_one()
            connection.execute(text(f"PRAGMA max_page_count = {pages}"))
            with pytest.raises(OperationalError) as raised:
                connection.execute(text("INSERT INTO blobs VALUES (:data)"), {"data": b"x" * 10**6})
    finally:
        engine.dispose()

    assert is_storage_full(raised.value)
    assert reason(raised.value) == "database or disk is full"


def test_a_locked_database_is_not_storage_full(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        with pytest.raises(OperationalError) as raised, engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
    finally:
        engine.dispose()
        holder.execute("ROLLBACK")
        holder.close()

    assert not is_storage_full(raised.value)
    assert reason(raised.value) == "database is locked"
    assert not is_storage_full(ValueError("database or disk is full"))
