"""Leases on jobs: claim, heartbeat, hand back, finish and reap. These functions never
commit.

A claimed job carries a fresh `lease_token`. Every later write for the job is conditional
on that token (and on the job still running), so a worker whose lease was taken away
(because its heartbeat went stale and the job was reaped) can never overwrite the next
owner's work. Every state change is conditional on the state it leaves, so a terminal
state (succeeded, failed, cancelled) never changes and concurrent workers need no leader.

Times are the database's (see `service.db.clock`), so workers on machines with skewed
clocks still agree on whose heartbeat is stale. Every function takes `now` to replace
that clock in tests.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.orm import Session

from service.db.clock import clock, sql_time
from service.db.jobs import TERMINAL, notify_job_queued
from service.db.models import JobRow, JobStatus
from service.db.statements import update_row

# A job whose worker died waits min(MAX_BACKOFF_SECONDS, base * 2**attempts) before its
# next attempt, so a job that kills its workers does not take them down in a tight loop.
MAX_BACKOFF_SECONDS = 60.0


class LeaseLost(Exception):
    """The job's lease now belongs to someone else (or the job left `running`)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"lease on job {job_id} was lost")
        self.job_id = job_id


@dataclass(frozen=True)
class Lease:
    """Proof that this worker owns a running job: the token it set when claiming it."""

    job_id: str
    token: str
    attempt: int
    worker_id: str


@dataclass(frozen=True)
class Reaped:
    """The stale running jobs one reap moved to each outcome, by id."""

    requeued: list[str]
    failed: list[str]
    cancelled: list[str]


def _held(lease: Lease) -> tuple[ColumnElement[bool], ...]:
    """The conditions under which `lease` is still valid."""
    return (JobRow.lease_token == lease.token, JobRow.status == JobStatus.RUNNING)


def claim_next(session: Session, worker_id: str, now: datetime | None = None) -> Lease | None:
    """Claim the oldest queued job that is due (`run_after` unset or past), if any.

    The claim takes an attempt (handed back, it gets it back). Running jobs whose worker
    died are not claimed here: `reap` puts them back in the queue first.
    """
    now = clock(session, now)
    # SKIP LOCKED lets PostgreSQL workers pass over rows another worker is claiming right
    # now; SQLite ignores it, its BEGIN IMMEDIATE already makes claims one at a time.
    row = session.execute(
        select(JobRow.id, JobRow.attempts)
        .where(
            JobRow.status == JobStatus.QUEUED,
            or_(JobRow.run_after.is_(None), JobRow.run_after <= sql_time(now)),
        )
        .order_by(JobRow.created_at, JobRow.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if row is None:
        return None
    token = uuid.uuid4().hex
    attempt = row.attempts + 1
    claimed = update_row(
        session,
        JobRow,
        row.id,
        JobRow.status == JobStatus.QUEUED,
        status=JobStatus.RUNNING,
        lease_token=token,
        attempts=attempt,
        heartbeat_at=sql_time(now),
        claimed_by=worker_id,
        run_after=None,
        started_at=func.coalesce(JobRow.started_at, sql_time(now)),
    )
    return Lease(row.id, token, attempt, worker_id) if claimed else None


def touch(session: Session, lease: Lease, now: datetime | None = None) -> bool:
    """Refresh the heartbeat if the lease is still ours; returns whether cancel was asked.

    Raises LeaseLost otherwise; call it first in every transaction that writes for a job.
    On PostgreSQL the row then stays locked until the transaction ends, so nobody else
    changes the job under the rest of that transaction.
    """
    heartbeat_at = sql_time(clock(session, now))
    if not update_row(session, JobRow, lease.job_id, *_held(lease), heartbeat_at=heartbeat_at):
        raise LeaseLost(lease.job_id)
    return bool(session.scalar(select(JobRow.cancel_requested).where(JobRow.id == lease.job_id)))


def hand_back(session: Session, lease: Lease, now: datetime | None = None) -> JobStatus:
    """Put a job this worker stopped on purpose back in the queue, lease cleared; returns
    the new status: `queued`, or `cancelled` when a cancel was asked meanwhile.

    The attempt is given back too: `attempts` counts runs that crashed or ended, so
    restarting workers (a deploy) never uses up a job's retries.
    """
    now = clock(session, now)
    if touch(session, lease, now):
        finish(session, lease, JobStatus.CANCELLED, now)
        return JobStatus.CANCELLED
    update_row(
        session,
        JobRow,
        lease.job_id,
        *_held(lease),
        status=JobStatus.QUEUED,
        lease_token=None,
        heartbeat_at=None,
        attempts=lease.attempt - 1,
    )
    notify_job_queued(session, lease.job_id)
    return JobStatus.QUEUED


def give_up(
    session: Session,
    lease: Lease,
    error: str,
    max_attempts: int,
    retry_backoff_seconds: float,
    now: datetime | None = None,
) -> JobStatus:
    """End the lease of a job whose worker cannot make progress (its writes kept failing),
    as a reap would, without waiting for the lease to expire: the attempt stays counted,
    so the job is queued again after the reap's backoff, or fails with `error` once it
    used up `max_attempts`; a cancel asked meanwhile cancels it. Returns the new status."""
    now = clock(session, now)
    if touch(session, lease, now):
        finish(session, lease, JobStatus.CANCELLED, now)
        return JobStatus.CANCELLED
    if lease.attempt >= max_attempts:
        finish(session, lease, JobStatus.FAILED, now, error=error)
        return JobStatus.FAILED
    update_row(
        session,
        JobRow,
        lease.job_id,
        *_held(lease),
        status=JobStatus.QUEUED,
        lease_token=None,
        heartbeat_at=None,
        run_after=_retry_at(now, retry_backoff_seconds, max_attempts),
    )
    notify_job_queued(session, lease.job_id)
    return JobStatus.QUEUED


def finish(
    session: Session,
    lease: Lease,
    status: JobStatus,
    now: datetime | None = None,
    *,
    error: str | None = None,
    stop_reason: str | None = None,
    model_version: int | None = None,
    weights_epoch: int | None = None,
) -> None:
    """Move a job this worker holds to a final state and clear its lease; `weights_epoch`
    is the epoch whose weights the job ended with."""
    if status not in TERMINAL:
        raise ValueError(f"{status.value} is not a final state")
    finished = update_row(
        session,
        JobRow,
        lease.job_id,
        *_held(lease),
        status=status,
        error=error,
        stop_reason=stop_reason,
        model_version=model_version,
        weights_epoch=weights_epoch,
        finished_at=sql_time(clock(session, now)),
        lease_token=None,
    )
    if not finished:
        raise LeaseLost(lease.job_id)


def _retry_at(
    now: datetime | None, backoff_seconds: float, max_attempts: int
) -> ColumnElement[datetime]:
    """When a reaped job may run again: later the more attempts it used up."""
    if backoff_seconds <= 0:
        return sql_time(now)
    # A CASE over the few attempt counts whose backoff is below the cap: the same SQL on
    # both databases, where SQLite has no exponent function or interval arithmetic.
    delays: dict[int, ColumnElement[datetime]] = {}
    attempts = 0
    while (
        attempts < max_attempts and (delay := backoff_seconds * 2**attempts) < MAX_BACKOFF_SECONDS
    ):
        delays[attempts] = sql_time(now, delay)
        attempts += 1
    longest = sql_time(now, MAX_BACKOFF_SECONDS)
    return case(delays, value=JobRow.attempts, else_=longest) if delays else longest


def reap(
    session: Session,
    lease_timeout_seconds: float,
    max_attempts: int,
    retry_backoff_seconds: float,
    now: datetime | None = None,
) -> Reaped:
    """End the leases of running jobs whose heartbeat is older than the lease timeout.

    Such a job is cancelled if that was asked, failed once it used up `max_attempts`, and
    otherwise queued again to run after a backoff, resuming from its last checkpoint.
    One conditional UPDATE per outcome, so any number of workers may reap at once: each
    job moves once, and its attempts were already counted when it was claimed. A job whose
    owner is writing to it just then is left alone: it is alive, or the next reap gets it.
    """
    now = clock(session, now)
    stale = (
        JobRow.status == JobStatus.RUNNING,
        JobRow.heartbeat_at < sql_time(now, -lease_timeout_seconds),
    )

    def end(*conditions: Any, **values: Any) -> list[str]:
        # SKIP LOCKED: rows another reaper (or their owner's heartbeat) is writing right
        # now are left to it, so concurrent reapers never wait for or deadlock on each other.
        rows = select(JobRow.id).where(*stale, *conditions).with_for_update(skip_locked=True)
        statement = (
            update(JobRow)
            .where(JobRow.id.in_(rows), *stale, *conditions)
            .values(lease_token=None, **values)
            .returning(JobRow.id)
        )
        return list(session.scalars(statement.execution_options(synchronize_session=False)))

    cancelled = end(JobRow.cancel_requested, status=JobStatus.CANCELLED, finished_at=sql_time(now))
    # The outcomes' conditions exclude each other: on PostgreSQL each statement reads the
    # clock anew, so a job may turn stale between them and must still get the right one.
    failed = end(
        ~JobRow.cancel_requested,
        JobRow.attempts >= max_attempts,
        status=JobStatus.FAILED,
        finished_at=sql_time(now),
        error=(
            f"its worker stopped heartbeating for over {lease_timeout_seconds:g} s on each "
            f"attempt; gave up after max_attempts={max_attempts}"
        ),
    )
    requeued = end(
        ~JobRow.cancel_requested,
        JobRow.attempts < max_attempts,
        status=JobStatus.QUEUED,
        heartbeat_at=None,
        run_after=_retry_at(now, retry_backoff_seconds, max_attempts),
    )
    return Reaped(requeued=requeued, failed=failed, cancelled=cancelled)
