"""Aggregates over the jobs and workers tables for the metrics endpoint: read only."""

from dataclasses import dataclass

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from service.db.clock import sql_now
from service.db.models import JobRow, JobStatus, WorkerRow


@dataclass(frozen=True)
class RunningJob:
    """A running job's lease: who holds it and how long ago it last heartbeat."""

    job_id: str
    worker: str
    heartbeat_age_seconds: float


@dataclass(frozen=True)
class JobStats:
    """Jobs by status (every status, zeros included), queued jobs that are due to run,
    epochs recorded over all jobs, and the running jobs' leases."""

    by_status: dict[JobStatus, int]
    due: int
    epochs: int
    running: list[RunningJob]


@dataclass(frozen=True)
class LiveWorker:
    """A registered worker: its current job (None: idle) and how long ago it last heartbeat."""

    worker: str
    job_id: str | None
    heartbeat_age_seconds: float


def job_stats(session: Session) -> JobStats:
    """Read the statistics of all jobs in one pass, plus one indexed read of running jobs."""
    now = sql_now(session)
    due = (JobRow.status == JobStatus.QUEUED) & or_(
        JobRow.run_after.is_(None), JobRow.run_after <= now
    )
    rows = session.execute(
        select(
            JobRow.status,
            func.count(),
            func.coalesce(func.sum(JobRow.epoch), 0),
            func.coalesce(func.sum(case((due, 1), else_=0)), 0),
        ).group_by(JobRow.status)
    ).all()
    by_status = dict.fromkeys(JobStatus, 0)
    for status, count, _, _ in rows:
        by_status[status] = count
    running = [
        RunningJob(
            job_id,
            worker or "",
            max(0.0, (clock - heartbeat_at).total_seconds()) if heartbeat_at else 0.0,
        )
        for job_id, worker, heartbeat_at, clock in session.execute(
            select(JobRow.id, JobRow.claimed_by, JobRow.heartbeat_at, now)
            .where(JobRow.status == JobStatus.RUNNING)
            .order_by(JobRow.id)
        )
    ]
    return JobStats(
        by_status=by_status,
        due=sum(row[3] for row in rows),
        epochs=sum(row[2] for row in rows),
        running=running,
    )


def worker_stats(session: Session) -> list[LiveWorker]:
    """Every registered worker, dead ones not yet reaped included, by id."""
    query = select(WorkerRow.id, WorkerRow.job_id, WorkerRow.heartbeat_at, sql_now(session))
    return [
        LiveWorker(worker, job_id, max(0.0, (clock - heartbeat_at).total_seconds()))
        for worker, job_id, heartbeat_at, clock in session.execute(query.order_by(WorkerRow.id))
    ]
