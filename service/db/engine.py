"""Engine and session factory for SQLite and PostgreSQL."""

import sqlite3
from typing import Literal

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_BUSY_TIMEOUT_MS = 30_000
# A server that does not answer (a host gone, packets dropped) fails a connection attempt
# after this long instead of the operating system's minutes; a refused one fails at once.
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
# How long a request waits for a pooled connection before it is told the database is
# unavailable (SQLAlchemy's default is 30 s).
POOL_TIMEOUT_SECONDS = 10

SqliteSynchronous = Literal["normal", "full"]


def make_engine(
    url: str,
    *,
    sqlite_foreign_keys: bool = True,
    read_only: bool = False,
    sqlite_synchronous: SqliteSynchronous = "normal",
    lock_timeout_seconds: float | None = None,
) -> Engine:
    """Create an engine for `url`, configured so several processes can share the database.

    `sqlite_foreign_keys=False` is for migrations only: SQLite rebuilds a table to alter
    it, and dropping the old copy with foreign keys on would cascade-delete child rows.
    `read_only=True` is for sessions that never write: on SQLite their transactions are
    deferred, so in WAL mode they read a snapshot without waiting for the write lock.
    `sqlite_synchronous` is SQLite's `synchronous` level (`BACKPROP_SQLITE_SYNCHRONOUS`).
    `lock_timeout_seconds` bounds, on PostgreSQL, how long a statement waits for a lock
    held elsewhere before it fails (a worker's writes: see `service.jobs.runner`); SQLite
    waits at most its busy timeout anyway.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # Pre-ping: a connection the server dropped (a restart) is replaced at checkout
        # instead of failing the first statement after the database is back.
        connect_args: dict[str, object] = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_SECONDS
        if lock_timeout_seconds is not None:
            milliseconds = max(1, round(lock_timeout_seconds * 1000))
            connect_args["options"] = f"-c lock_timeout={milliseconds}"
        return create_engine(
            url, pool_pre_ping=True, pool_timeout=POOL_TIMEOUT_SECONDS, connect_args=connect_args
        )

    # No cache of prepared statements: a cached statement keeps its last bound values, so
    # the INSERT of a 168 MB dataset held SQLite's copy of that blob in the API process
    # until the next dataset came (190 MB of its RSS). Preparing costs microseconds.
    engine = create_engine(url, connect_args={"cached_statements": 0})
    pragmas = [
        # First, so that switching to WAL waits for other connections instead of failing.
        f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
        # A writer no longer blocks readers outside a transaction, and commits are cheaper.
        "PRAGMA journal_mode = WAL",
        # In WAL mode NORMAL cannot corrupt the database; it skips the fsync per commit
        # (the last commits can be lost on power failure, not on a process crash). FULL
        # syncs the WAL at every commit. README.md, "Durability", says which and why.
        f"PRAGMA synchronous = {sqlite_synchronous.upper()}",
        f"PRAGMA foreign_keys = {'ON' if sqlite_foreign_keys else 'OFF'}",
    ]

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
        # pysqlite would issue its own deferred BEGIN only before writes; take transaction
        # control away from it so `on_begin` decides (SQLAlchemy's documented recipe).
        dbapi_connection.isolation_level = None
        for pragma in pragmas:
            dbapi_connection.execute(pragma).close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front, waiting up to busy_timeout. A deferred
        # transaction that reads and then writes fails with "database is locked" when
        # another process wrote in between, and two workers could claim the same job.
        # The price: such transactions run one at a time, so keep them short; read-only
        # engines take a deferred BEGIN and read a WAL snapshot without waiting.
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return the session factory bound to `engine`."""
    # Rows stay readable after commit, e.g. to build the response from the object
    # that was just written, without a second round trip.
    return sessionmaker(engine, expire_on_commit=False)
