"""What a failed database call means, in words an operator can act on: a full disk, a
lock held elsewhere, or anything else the driver reported. No SQL here, only the reading
of errors that SQLAlchemy raised."""

import sqlite3

from sqlalchemy.exc import DBAPIError

# SQLite's primary result code for "database or disk is full"; PostgreSQL's SQLSTATE
# class 53 is "insufficient resources", 53100 its disk_full.
SQLITE_FULL = 13
POSTGRES_DISK_FULL = "53100"
MAX_REASON_CHARS = 200


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
