"""Leases on jobs: claim, heartbeat, hand back and finish. These functions never commit.

A claimed job carries a fresh `lease_token`. Every later write for the job first checks
that the token is still the one it was claimed with, so a worker whose lease was taken
over (because its heartbeat went stale) can never overwrite the new owner's work.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, or_, select, update
from sqlalchemy.orm import Session

from service.db.models import Job, JobStatus


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


def _update(session: Session, job_id: str, token: str | None, **values: Any) -> int:
    """UPDATE one job (only while it holds `token`, when given); returns the row count."""
    statement = update(Job).where(Job.id == job_id)
    if token is not None:
        statement = statement.where(Job.lease_token == token)
    result = session.execute(
        statement.values(**values).execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], result).rowcount


def claim_next(
    session: Session,
    worker_id: str,
    now: datetime,
    lease_timeout_seconds: float,
    max_attempts: int,
) -> Lease | None:
    """Claim the oldest runnable job: queued and due, or running with a stale heartbeat.

    A job whose cancellation was asked for, or a stale one that already used up
    `max_attempts`, is ended (cancelled or failed) instead, and the next candidate is tried.
    """
    stale_before = now - timedelta(seconds=lease_timeout_seconds)
    claimable = or_(
        and_(
            Job.status == JobStatus.QUEUED,
            or_(Job.run_after.is_(None), Job.run_after <= now),
        ),
        and_(Job.status == JobStatus.RUNNING, Job.heartbeat_at < stale_before),
    )
    # SKIP LOCKED lets PostgreSQL workers pass over rows another worker is claiming right
    # now; SQLite ignores it, its BEGIN IMMEDIATE already makes claims one at a time.
    query = (
        select(Job.id, Job.status, Job.attempts, Job.cancel_requested, Job.started_at)
        .where(claimable)
        .order_by(Job.created_at, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    while (row := session.execute(query).first()) is not None:
        # A cancel can be asked while the job was being handed back or its worker died.
        if row.cancel_requested:
            _update(
                session,
                row.id,
                None,
                status=JobStatus.CANCELLED,
                finished_at=now,
                lease_token=None,
            )
            continue
        if row.status == JobStatus.RUNNING and row.attempts >= max_attempts:
            _update(
                session,
                row.id,
                None,
                status=JobStatus.FAILED,
                error=(
                    f"its worker stopped heartbeating on each of {row.attempts} attempts; "
                    f"gave up after max_attempts={max_attempts}"
                ),
                finished_at=now,
                lease_token=None,
            )
            continue
        token = uuid.uuid4().hex
        attempt = row.attempts + 1
        _update(
            session,
            row.id,
            None,
            status=JobStatus.RUNNING,
            lease_token=token,
            attempts=attempt,
            heartbeat_at=now,
            claimed_by=worker_id,
            started_at=row.started_at or now,
        )
        return Lease(row.id, token, attempt, worker_id)
    return None


def touch(session: Session, lease: Lease, now: datetime) -> bool:
    """Refresh the heartbeat if the lease is still ours; returns whether cancel was asked.

    Raises LeaseLost otherwise; call it first in every transaction that writes for a job.
    """
    if _update(session, lease.job_id, lease.token, heartbeat_at=now) != 1:
        raise LeaseLost(lease.job_id)
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == lease.job_id)))


def hand_back(session: Session, lease: Lease) -> None:
    """Put a job this worker stopped on purpose back in the queue, lease cleared.

    The attempt is given back too: `attempts` counts runs that crashed or ended, so
    restarting workers (a deploy) never uses up a job's retries.
    """
    handed_back = _update(
        session,
        lease.job_id,
        lease.token,
        status=JobStatus.QUEUED,
        lease_token=None,
        heartbeat_at=None,
        attempts=lease.attempt - 1,
    )
    if handed_back != 1:
        raise LeaseLost(lease.job_id)


def finish(
    session: Session,
    lease: Lease,
    status: JobStatus,
    now: datetime,
    *,
    error: str | None = None,
    stop_reason: str | None = None,
    model_version: int | None = None,
) -> None:
    """Move a job this worker holds to a final state and clear its lease."""
    finished = _update(
        session,
        lease.job_id,
        lease.token,
        status=status,
        error=error,
        stop_reason=stop_reason,
        model_version=model_version,
        finished_at=now,
        lease_token=None,
    )
    if finished != 1:
        raise LeaseLost(lease.job_id)
