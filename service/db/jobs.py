"""Job queries shared by the API and the workers. They never commit."""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from service.core import EpochRecord, RunSpec
from service.db import wakeups
from service.db.base import utc_now
from service.db.models import HistoryRow, JobRow, JobStatus, SnapshotRow
from service.db.pagination import decode_cursor, newest_first_page, page_of
from service.db.statements import update_row, upsert
from service.db.tags import edit_metadata, tags_match
from service.errors import Conflict, NotFound

TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
# Advisory lock (PostgreSQL) that serializes job creation while the active jobs are counted.
CREATE_LOCK_KEY = 0x6270_6A6F_6273  # "bpjobs"
# PostgreSQL channel on which a queued job is announced to idle workers (see notify_job_queued).
JOBS_CHANNEL = "backprop_jobs"
# A job flips between queued and running only when a worker claims or hands it back.
CANCEL_TRIES = 5
# A history row's values: loss, val_loss, rmse, the metrics and the learning rate.
HISTORY_METRICS = tuple(
    column.name for column in HistoryRow.__table__.columns if not column.primary_key
)


# Where a warm start began, kept in the job's stored spec beside network, training and
# preprocessing: `{"initial_model": {"name", "version"}}` or `{"initial_job": {"id", "epoch"}}`.
START_MODEL = "initial_model"
START_JOB = "initial_job"


@dataclass(frozen=True)
class WarmStart:
    """The model blob a job starts from (its own copy) and where it came from, as stored
    in the job's spec: `{START_MODEL: {...}}` or `{START_JOB: {...}}`."""

    weights: bytes
    source: dict[str, dict[str, Any]]


def create_job(
    session: Session,
    dataset_id: str,
    spec: RunSpec,
    model_name: str | None,
    checkpoint_every: int,
    *,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    start: WarmStart | None = None,
    retry_of: JobRow | None = None,
) -> JobRow:
    """Queue a job; the spec must already be checked against its dataset. A retry copies
    the description and tags of the job it retries."""
    job = JobRow(
        dataset_id=dataset_id,
        model_name=model_name,
        status=JobStatus.QUEUED,
        spec=spec.to_dict() | ({} if start is None else start.source),
        checkpoint_every=checkpoint_every,
        epochs_total=spec.training.epochs,
        description=description,
        tags=dict(tags or {}),
        initial_weights=None if start is None else start.weights,
    )
    if retry_of is not None:
        job.retry_of = retry_of.id
        job.description = retry_of.description
        job.tags = dict(retry_of.tags or {})
    session.add(job)
    session.flush()
    notify_job_queued(session, job.id)
    return job


def notify_job_queued(session: Session, job_id: str) -> None:
    """Wake the idle workers when this transaction commits, and not on rollback: on
    PostgreSQL with NOTIFY (delivered at commit), on a SQLite file through its wake-up
    pipe (`service.db.wakeups`). Workers that miss it find the job at their next poll."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(select(func.pg_notify(JOBS_CHANNEL, job_id)))
    elif (pipe := wakeups.pipe_path(bind.engine.url)) is not None:
        wakeups.wake_after_commit(session, pipe)


def count_active_jobs(session: Session) -> int:
    """Queued and running jobs. On PostgreSQL this first takes a lock held until commit,
    so requests creating jobs count one after another and cannot both take the last
    free place; SQLite's write transactions (BEGIN IMMEDIATE) already run one at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(CREATE_LOCK_KEY)))
    active = select(func.count()).select_from(JobRow).where(JobRow.status.in_(ACTIVE))
    return session.scalar(active) or 0


def get_job(session: Session, job_id: str) -> JobRow:
    job = session.get(JobRow, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    return job


def list_jobs(
    session: Session,
    limit: int,
    cursor: str | None,
    status: JobStatus | None = None,
    model_name: str | None = None,
    tags: Sequence[tuple[str, str]] = (),
) -> tuple[list[JobRow], str | None]:
    """Newest first, optionally filtered by status, model name and tags (all must match)."""
    query = select(JobRow).where(tags_match(JobRow.tags, tags))
    if status is not None:
        query = query.where(JobRow.status == status)
    if model_name is not None:
        query = query.where(JobRow.model_name == model_name)
    return newest_first_page(session, JobRow, query, limit, cursor)


def cancel_job(session: Session, job_id: str) -> JobRow:
    """Cancel a queued job at once; ask the worker of a running one to stop."""
    job = get_job(session, job_id)
    # Each UPDATE is conditional on the state it leaves, so a job that moves meanwhile (a
    # worker claims it, hands it back or finishes it) is met in its new state by the next.
    for _ in range(CANCEL_TRIES):
        if job.status in TERMINAL:
            raise Conflict(
                f"job {job_id} is already {job.status.value}; "
                "only queued or running jobs can be cancelled"
            )
        if update_row(
            session,
            JobRow,
            job_id,
            JobRow.status == JobStatus.QUEUED,
            status=JobStatus.CANCELLED,
            finished_at=utc_now(),
            lease_token=None,
        ) or update_row(
            session, JobRow, job_id, JobRow.status == JobStatus.RUNNING, cancel_requested=True
        ):
            session.refresh(job)
            return job
        session.refresh(job)
    raise Conflict(f"job {job_id} kept changing state; try cancelling it again")


def edit_job(session: Session, job_id: str, changes: Mapping[str, Any]) -> JobRow:
    """Change a job's description and tags (see `tags.edit_metadata`), in any state. On
    PostgreSQL the row is locked first, so two edits of the tags merge one after the other."""
    job = session.get(JobRow, job_id, with_for_update=True)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    edit_metadata(job, changes)
    session.flush()
    return job


def delete_job(session: Session, job_id: str) -> None:
    """Delete a finished job with its history and snapshots, one statement each. The
    model versions it registered keep their own weights and stay (their `job_id` becomes
    null). Its dataset is deletable once no other job uses it.

    The status is read with the row locked (FOR UPDATE on PostgreSQL, SQLite's write lock
    held since BEGIN IMMEDIATE), so a worker cannot start or finish the job in between: a
    worker finishing it holds the row (`leases.touch`) until its commit, and the delete
    then sees the job succeeded and removes all of it. The row is taken before its
    children, in the order the worker's writes take them, so the two never deadlock.
    """
    status = session.scalar(select(JobRow.status).where(JobRow.id == job_id).with_for_update())
    if status is None:
        raise NotFound(f"job {job_id} does not exist")
    if status in ACTIVE:
        raise Conflict(f"job {job_id} is {status.value}; cancel it first, then delete it")
    session.execute(delete(HistoryRow).where(HistoryRow.job_id == job_id))
    session.execute(delete(SnapshotRow).where(SnapshotRow.job_id == job_id))
    # The versions' job_id is set null by the foreign key (ON DELETE SET NULL).
    session.execute(delete(JobRow).where(JobRow.id == job_id))


def history_page(
    session: Session, job_id: str, limit: int, cursor: str | None, max_points: int | None
) -> tuple[list[HistoryRow], str | None]:
    """Epochs in order; with `max_points`, every k-th epoch (and the last) so that at most
    that many points cover the whole run."""
    get_job(session, job_id)
    query = select(HistoryRow).where(HistoryRow.job_id == job_id).order_by(HistoryRow.epoch)
    if max_points is not None:
        last = session.scalar(select(func.max(HistoryRow.epoch)).where(HistoryRow.job_id == job_id))
        if last is not None and last > max_points:
            # Epochs 1, 1 + stride, ... and the last: at most max_points in all.
            stride = math.ceil((last - 1) / (max_points - 1))
            query = query.where(((HistoryRow.epoch - 1) % stride == 0) | (HistoryRow.epoch == last))
    if cursor is not None:
        (after,) = decode_cursor(cursor, (int,))
        query = query.where(HistoryRow.epoch > after)
    rows = list(session.scalars(query.limit(limit + 1)))
    return page_of(rows, limit, lambda row: [row.epoch])


def whole_history(session: Session, job_id: str) -> list[HistoryRow]:
    """Every epoch of the job's history, in order."""
    get_job(session, job_id)
    query = select(HistoryRow).where(HistoryRow.job_id == job_id).order_by(HistoryRow.epoch)
    return list(session.scalars(query))


def history_after(session: Session, job_id: str, epoch: int, limit: int) -> list[HistoryRow]:
    """Up to `limit` epochs of the job after `epoch`, in order."""
    query = select(HistoryRow).where(HistoryRow.job_id == job_id, HistoryRow.epoch > epoch)
    return list(session.scalars(query.order_by(HistoryRow.epoch).limit(limit)))


def upsert_history(session: Session, job_id: str, records: Sequence[EpochRecord]) -> None:
    """Write epoch records; an epoch written before (by an earlier attempt) is replaced."""
    if not records:
        return
    rows: list[dict[str, Any]] = [{"job_id": job_id, **record.to_dict()} for record in records]
    # Rows go as parameters of one cached statement (executemany), not as a VALUES list
    # compiled anew for every batch: compiling 500 rows cost more than training XOR.
    session.execute(
        upsert(session, HistoryRow, key=("job_id", "epoch"), replace=HISTORY_METRICS), rows
    )


def upsert_snapshots(session: Session, snapshots: Sequence[SnapshotRow]) -> None:
    """Write snapshots; one at an epoch written before (by an earlier attempt) is replaced,
    except that a snapshot without a checkpoint keeps the checkpoint stored at its epoch
    (the same weights: early stopping restored them)."""
    if not snapshots:
        return
    # One row per epoch, as if written in turn (a diverged run rewrites the epoch whose
    # weights it kept in the same flush): a multi-row INSERT may not touch a row twice.
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for snapshot in snapshots:
        key = (snapshot.job_id, snapshot.epoch)
        checkpoint = snapshot.checkpoint
        if checkpoint is None and key in rows:
            checkpoint = rows[key]["checkpoint"]
        rows[key] = {
            "job_id": snapshot.job_id,
            "epoch": snapshot.epoch,
            "weights": snapshot.weights,
            "checkpoint": checkpoint,
        }
    statement = upsert(
        session,
        SnapshotRow,
        key=("job_id", "epoch"),
        replace=("weights", "created_at"),
        keep_when_null=("checkpoint",),
    )
    # One statement for all of them (executemany), not a read and a write per snapshot:
    # the notebook's job writes 50, which cost more than training it.
    session.execute(statement, list(rows.values()))


def epoch_metrics(session: Session, job_id: str, epoch: int) -> dict[str, float | None] | None:
    """The history row of one epoch as `{loss, val_loss, rmse, ...}`, or None (epoch 0,
    or never written)."""
    row = session.get(HistoryRow, (job_id, epoch))
    if row is None:
        return None
    return {name: getattr(row, name) for name in HISTORY_METRICS}


def snapshot_epochs(session: Session, job_id: str) -> list[int]:
    return list(
        session.scalars(
            select(SnapshotRow.epoch)
            .where(SnapshotRow.job_id == job_id)
            .order_by(SnapshotRow.epoch)
        )
    )


def snapshot_page(
    session: Session, job_id: str, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """Epochs and times of a job's snapshots, in order, without their weights."""
    get_job(session, job_id)
    query = (
        select(SnapshotRow.epoch, SnapshotRow.created_at)
        .where(SnapshotRow.job_id == job_id)
        .order_by(SnapshotRow.epoch)
    )
    if cursor is not None:
        (after,) = decode_cursor(cursor, (int,))
        query = query.where(SnapshotRow.epoch > after)
    rows = list(session.execute(query.limit(limit + 1)))
    return page_of(rows, limit, lambda row: [row.epoch])


def get_snapshot(session: Session, job_id: str, epoch: int | None) -> SnapshotRow:
    """The snapshot at `epoch`, or the latest one when `epoch` is None."""
    get_job(session, job_id)
    query = select(SnapshotRow).where(SnapshotRow.job_id == job_id)
    if epoch is None:
        snapshot = session.scalars(query.order_by(SnapshotRow.epoch.desc()).limit(1)).first()
    else:
        snapshot = session.scalars(query.where(SnapshotRow.epoch == epoch)).first()
    if snapshot is None:
        epochs = snapshot_epochs(session, job_id)
        raise NotFound(
            f"job {job_id} has no snapshot"
            + ("" if epoch is None else f" at epoch {epoch}")
            + (f"; snapshots exist at epochs {_summary(epochs)}" if epochs else " yet")
        )
    return snapshot


def _summary(epochs: Iterable[int]) -> str:
    values = list(epochs)
    shown = ", ".join(map(str, values[:10]))
    return shown + (f", ... ({len(values)} in all)" if len(values) > 10 else "")


def warm_start_of(job: JobRow) -> WarmStart | None:
    """The warm start `job` began from, to begin a retry of it the same way."""
    if job.initial_weights is None:
        return None
    source = {key: job.spec[key] for key in (START_MODEL, START_JOB) if key in job.spec}
    return WarmStart(job.initial_weights, source)


def final_snapshot(session: Session, job: JobRow) -> SnapshotRow:
    """The snapshot of the weights the job ended with (`weights_epoch`), or its latest
    for a job that ended before that was recorded."""
    return get_snapshot(session, job.id, job.weights_epoch)


def latest_checkpoint_epoch(session: Session, job_id: str) -> int | None:
    """The epoch of the job's latest snapshot with a checkpoint (a resume point), if any."""
    return session.scalar(
        select(func.max(SnapshotRow.epoch)).where(
            SnapshotRow.job_id == job_id, SnapshotRow.checkpoint.is_not(None)
        )
    )


def copy_run(session: Session, source_id: str, target: JobRow, epoch: int) -> None:
    """Give `target` the run of `source_id` up to its checkpoint at `epoch`: that snapshot
    and the history up to it, copied, so `target` resumes exactly there (the worker's
    resume path reads them) and does not depend on the source job staying."""
    snapshot = get_snapshot(session, source_id, epoch)
    session.add(
        SnapshotRow(
            job_id=target.id,
            epoch=epoch,
            weights=snapshot.weights,
            checkpoint=snapshot.checkpoint,
        )
    )
    names = ("epoch", *HISTORY_METRICS)
    rows = session.execute(
        select(*(getattr(HistoryRow, name) for name in names)).where(
            HistoryRow.job_id == source_id, HistoryRow.epoch <= epoch
        )
    )
    copies = [{"job_id": target.id, **row._asdict()} for row in rows]
    if copies:
        session.execute(insert(HistoryRow), copies)
    target.epoch = epoch
    session.flush()
