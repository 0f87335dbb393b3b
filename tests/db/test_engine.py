"""SQLite engine settings that let several processes share one database file, and which
database errors mean the database is unavailable just now."""

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError, OperationalError

from service.api.app import create_app
from service.config import Settings
from service.db import DatasetRow, JobRow, is_unavailable, make_engine, make_session_factory
from service.db.engine import SQLITE_BUSY_TIMEOUT_MS
from service.db.migrate import upgrade
from service.jobs.worker import Worker
from tests.helpers import free_port

WORKERS = 4
INCREMENTS_PER_WORKER = 25


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite file; these tests are about SQLite only."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    upgrade(url)
    return url


def test_sqlite_pragmas_are_in_effect_on_every_connection(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        # Two pooled connections, one after the other: each transaction holds the write
        # lock, so opening both at once would wait for busy_timeout.
        for _ in range(2):
            with engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                busy_timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
                assert busy_timeout == SQLITE_BUSY_TIMEOUT_MS
                connection.invalidate()
    finally:
        engine.dispose()


# PRAGMA synchronous answers a number: 1 is NORMAL, 2 is FULL.
SYNCHRONOUS_LEVELS = {"normal": 1, "full": 2}


@pytest.mark.parametrize("setting", [None, "normal", "FULL"])
def test_sqlite_synchronous_is_normal_unless_set_to_full_in_the_api_and_the_workers(
    sqlite_url: str, setting: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README.md, "Durability": in WAL mode NORMAL loses no commit to a process crash,
    only the last ones to a power cut; BACKPROP_SQLITE_SYNCHRONOUS=full syncs each."""
    if setting is not None:
        monkeypatch.setenv("BACKPROP_SQLITE_SYNCHRONOUS", setting)
    settings = Settings(database_url=sqlite_url)
    expected = SYNCHRONOUS_LEVELS[(setting or "normal").lower()]
    with TestClient(create_app(settings)) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == expected
    with Worker(settings) as worker, worker.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == expected


def test_sqlite_transaction_takes_the_write_lock_at_begin(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            # A read alone already holds the write lock: no other writer can start.
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            connection.rollback()
        other.execute("BEGIN IMMEDIATE")
        other.rollback()
    finally:
        other.close()
        engine.dispose()


def test_sqlite_ddl_is_rolled_back_with_its_transaction(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("CREATE TABLE scratch (x INTEGER)"))
            connection.rollback()
            assert "scratch" not in inspect(connection).get_table_names()
    finally:
        engine.dispose()


def increment_attempts(url: str, job_id: str) -> None:
    """Read-modify-write the job's attempts counter many times (runs in a child process)."""
    engine = make_engine(url)
    session_factory = make_session_factory(engine)
    try:
        for _ in range(INCREMENTS_PER_WORKER):
            with session_factory.begin() as session:
                job = session.get_one(JobRow, job_id)
                job.attempts += 1
    finally:
        engine.dispose()


def test_concurrent_processes_lose_no_update_and_never_see_locked(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    session_factory = make_session_factory(engine)
    try:
        with session_factory.begin() as session:
            dataset = DatasetRow(
                name="d",
                n_samples=0,
                n_features=1,
                n_targets=1,
                inputs=b"",
                targets=b"",
                source={"kind": "rows"},
            )
            session.add(dataset)
            session.flush()
            job = JobRow(dataset_id=dataset.id, spec={}, checkpoint_every=1, epochs_total=1)
            session.add(job)
            session.flush()
            job_id = job.id

        spawn = multiprocessing.get_context("spawn")
        with spawn.Pool(WORKERS) as pool:
            # .get() re-raises a child's "database is locked", failing the test.
            results = [
                pool.apply_async(increment_attempts, (sqlite_url, job_id)) for _ in range(WORKERS)
            ]
            for result in results:
                result.get(timeout=120)

        with session_factory() as session:
            assert session.get_one(JobRow, job_id).attempts == WORKERS * INCREMENTS_PER_WORKER
    finally:
        engine.dispose()


def test_a_postgres_server_that_does_not_answer_is_unavailable_not_an_error() -> None:
    # Nothing listens on the port: what a client meets while the server restarts.
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    try:
        with pytest.raises(OperationalError) as refused, engine.connect():
            pass
    finally:
        engine.dispose()
    assert is_unavailable(refused.value)


def test_a_refused_statement_is_no_outage(db_engine: Engine) -> None:
    with pytest.raises(DBAPIError) as refused, db_engine.connect() as connection:
        connection.exec_driver_sql("SELECT * FROM no_such_table")
    assert not is_unavailable(refused.value)
