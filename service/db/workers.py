"""The workers' own rows, which say which workers are alive and what each runs. These
functions never commit; times are the database's (see `service.db.clock`)."""

import os
import socket
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.db.clock import clock, sql_time
from service.db.models import WorkerRow
from service.db.statements import update_row, upsert


def register_worker(
    session: Session, worker_id: str, job_id: str | None = None, now: datetime | None = None
) -> None:
    """Insert (or renew) this process's worker row, running `job_id`, heartbeat now."""
    now = clock(session, now)
    session.execute(
        upsert(
            session,
            WorkerRow,
            key=("id",),
            replace=("heartbeat_at", "job_id"),
            id=worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            started_at=sql_time(now),
            heartbeat_at=sql_time(now),
            job_id=job_id,
        )
    )


def beat_worker(
    session: Session, worker_id: str, job_id: str | None, now: datetime | None = None
) -> bool:
    """Refresh the worker's heartbeat and current job; False if it has no row (any more)."""
    heartbeat_at = sql_time(clock(session, now))
    return update_row(session, WorkerRow, worker_id, heartbeat_at=heartbeat_at, job_id=job_id)


def deregister_worker(session: Session, worker_id: str) -> None:
    """Delete the worker's row: it stops."""
    session.execute(delete(WorkerRow).where(WorkerRow.id == worker_id))


def reap_workers(
    session: Session, stale_after_seconds: float, now: datetime | None = None
) -> list[str]:
    """Delete the rows of workers whose heartbeat is older than `stale_after_seconds`
    (they died without a clean exit); returns their ids."""
    stale = WorkerRow.heartbeat_at < sql_time(clock(session, now), -stale_after_seconds)
    # SKIP LOCKED, as in `leases.reap`: a row its worker or another reaper is writing is
    # left alone.
    rows = select(WorkerRow.id).where(stale).with_for_update(skip_locked=True)
    statement = delete(WorkerRow).where(WorkerRow.id.in_(rows), stale).returning(WorkerRow.id)
    return list(session.scalars(statement.execution_options(synchronize_session=False)))
