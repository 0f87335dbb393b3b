"""The database's clock, which times leases, heartbeats and the metrics' ages.

On PostgreSQL it is the server's `clock_timestamp()`, evaluated in the statement, so
workers on machines with skewed clocks still agree on whose heartbeat is stale. A SQLite
database is a file on this machine, so there Python's UTC clock is the database machine's
clock. Functions that write times take `now` to replace that clock in tests.
"""

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Interval, func, literal, select
from sqlalchemy.orm import Session

from service.db.base import UTCDateTime, utc_now


def clock(session: Session, now: datetime | None = None) -> datetime | None:
    """The time to write: `now` when given; None stands for the PostgreSQL server's clock,
    which `sql_time` turns into SQL evaluated by each statement."""
    if now is not None:
        return now
    if session.get_bind().dialect.name == "postgresql":
        # clock_timestamp(), unlike now(), is the time the statement runs, after any wait
        # for locks, not the time the transaction began.
        return None
    # SQLite runs in this process on this machine: this clock is the database's clock.
    # Read once the transaction holds the write lock (its BEGIN IMMEDIATE may wait for
    # it), so a claim that waited is stamped when it was made, not when it began to wait.
    session.connection()
    return utc_now()


def sql_time(now: datetime | None, seconds: float = 0.0) -> ColumnElement[datetime]:
    """`now` plus `seconds` as a SQL expression (the server's clock when `now` is None)."""
    if now is None:
        server_clock = func.clock_timestamp(type_=UTCDateTime())
        if not seconds:
            return server_clock
        return server_clock + literal(timedelta(seconds=seconds), Interval())
    return literal(now + timedelta(seconds=seconds), UTCDateTime())


def sql_now(session: Session) -> ColumnElement[datetime]:
    """The database's current time as a SQL expression."""
    return sql_time(clock(session))


def database_now(session: Session) -> datetime:
    """The database's current time, read."""
    now = clock(session)
    return now if now is not None else session.execute(select(sql_time(None))).scalar_one()
