"""What a failed database call means, in words an operator can act on: a full disk, a
database unavailable just now, or anything else the driver reported. No SQL here, only the reading
of errors that SQLAlchemy raised."""

import sqlite3

import psycopg
from sqlalchemy import exc
from sqlalchemy.exc import DBAPIError

# SQLite's primary result code for "database or disk is full"; PostgreSQL's SQLSTATE
# class 53 is "insufficient resources", 53100 its disk_full.
SQLITE_FULL = 13
POSTGRES_DISK_FULL = "53100"
MAX_REASON_CHARS = 200
# PostgreSQL's SQLSTATEs for "cannot be reached just now": class 08 (connection
# exception), 57P01-57P05 (the server shutting down, crashed, starting up, idle-session
# timeout), 53300 (too many connections).
UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P", "53300")


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database cannot be reached just now (a server restart, a
    lost connection, no connection free in the pool) rather than that it refused what was
    asked: the same call can succeed once the database is back."""
    if isinstance(error, exc.TimeoutError | exc.DisconnectionError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    cause = error.orig
    if isinstance(cause, psycopg.InterfaceError):
        return True
    if isinstance(cause, psycopg.OperationalError):
        # No SQLSTATE: the client found no server (refused, reset, closed, timed out).
        return cause.sqlstate is None or cause.sqlstate.startswith(UNAVAILABLE_SQLSTATE_PREFIXES)
    return False


def is_storage_full(error: BaseException) -> bool:
    """Whether `error` says the database's disk (or the database itself) is full."""
    if not isinstance(error, DBAPIError):
        return False
    original = error.orig
    if isinstance(original, sqlite3.Error):
        return (getattr(original, "sqlite_errorcode", None) or 0) & 0xFF == SQLITE_FULL or (
            "database or disk is full" in str(original)
        )
    return getattr(original, "sqlstate", None) == POSTGRES_DISK_FULL


def reason(error: BaseException) -> str:
    """The first line of the driver's own message, short: what a log line or a job's error
    says about a failed database call (SQLAlchemy's wrapper adds the statement and its
    parameters, which can be a whole dataset; PostgreSQL's next lines quote the SQL)."""
    original = error.orig if isinstance(error, DBAPIError) else error
    lines = str(original).strip().splitlines()
    text = lines[0].strip() if lines else type(original).__name__
    return text[:MAX_REASON_CHARS]
