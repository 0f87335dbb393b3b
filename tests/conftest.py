"""Database fixtures: each test that asks for a database gets an empty one of its own.

It runs on a SQLite file always and, when BACKPROP_TEST_POSTGRES_URL is set (e.g.
`postgresql+psycopg://postgres@127.0.0.1:5432/test`), also on a fresh PostgreSQL
database created on that server for the test and dropped afterwards.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from service.core.compiled import warm_up
from service.db import make_engine, make_session_factory
from service.db.migrate import upgrade

POSTGRES_URL_ENV = "BACKPROP_TEST_POSTGRES_URL"


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(POSTGRES_URL_ENV) else ["sqlite"]


def _fresh_postgres_database(server_url: str) -> Iterator[str]:
    """Create a uniquely named database on the server, yield its URL, then drop it."""
    admin = create_engine(
        server_url,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": 10},
    )
    name = f"backprop_test_{uuid.uuid4().hex[:16]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as error:
        admin.dispose()
        # A configured but unreachable server is a broken setup, not a reason to skip.
        pytest.fail(f"{POSTGRES_URL_ENV} is set but unusable: {error}", pytrace=False)
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database for this test only."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'backprop.db'}"
    else:
        yield from _fresh_postgres_database(os.environ[POSTGRES_URL_ENV])


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """URL of a database of this test's own, migrated to the newest revision."""
    upgrade(database_url)
    return database_url


@pytest.fixture
def db_engine(migrated_url: str) -> Iterator[Engine]:
    """Engine on a migrated database, disposed after the test."""
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    """Session on a migrated database; the test commits what it wants kept."""
    with make_session_factory(db_engine)() as session:
        yield session


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels() -> None:
    """Compile the compiled engine's kernels into numba's on-disk cache once, before any
    test: the workers and CLI runs the tests start then load them in a second, instead of
    each compiling them (tens of seconds on a busy machine) against a test's timeout."""
    assert warm_up(), "numba must load where the tests run"
