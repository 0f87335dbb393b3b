"""What a worker's run of a job reads and writes besides its lease: the run's input when
it starts, its progress as it trains. Call `leases.touch` first in the same transaction,
so nothing is written once the lease is lost. These functions never commit."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.core import EpochRecord
from service.core.labels import Labels
from service.db.clock import database_now
from service.db.datasets import dataset_data
from service.db.jobs import upsert_history, upsert_snapshots
from service.db.models import DatasetRow, HistoryRow, JobRow, SnapshotRow
from service.db.statements import update_row


@dataclass(frozen=True)
class RunInput:
    """What a run needs from the database, read once when it starts."""

    spec: dict[str, Any]
    model_name: str | None
    checkpoint_every: int
    inputs: np.ndarray
    # Regression targets, or a labelled dataset's classes (encoded once the spec is known).
    targets: np.ndarray | Labels
    # The dataset's column names, when it had a header.
    feature_names: tuple[str, ...] | None
    checkpoint: bytes | None
    resume_epoch: int
    # Seconds the job has run since it first started, by the database's clock.
    elapsed_seconds: float
    # The model blob a warm-started job begins from.
    initial_weights: bytes | None = None


def start_run(session: Session, job_id: str) -> RunInput:
    """Read the job, its data and latest checkpoint, and rewind the job to that checkpoint:
    history past it (written by an attempt that died) is deleted, since this run writes
    those epochs again."""
    job = session.get_one(JobRow, job_id)
    now = database_now(session)
    elapsed = (now - (job.started_at or now)).total_seconds()
    dataset = session.get_one(DatasetRow, job.dataset_id)
    inputs, targets = dataset_data(dataset)
    latest = session.scalars(
        select(SnapshotRow)
        .where(SnapshotRow.job_id == job_id, SnapshotRow.checkpoint.is_not(None))
        .order_by(SnapshotRow.epoch.desc())
        .limit(1)
    ).first()
    resume_epoch = latest.epoch if latest is not None else 0
    session.execute(
        delete(HistoryRow).where(HistoryRow.job_id == job_id, HistoryRow.epoch > resume_epoch)
    )
    update_row(session, JobRow, job_id, epoch=resume_epoch)
    return RunInput(
        spec=job.spec,
        model_name=job.model_name,
        checkpoint_every=job.checkpoint_every,
        inputs=inputs,
        targets=targets,
        feature_names=None if dataset.feature_names is None else tuple(dataset.feature_names),
        checkpoint=latest.checkpoint if latest is not None else None,
        resume_epoch=resume_epoch,
        elapsed_seconds=elapsed,
        initial_weights=job.initial_weights,
    )


def record_progress(
    session: Session,
    job_id: str,
    records: Sequence[EpochRecord],
    snapshots: Sequence[SnapshotRow],
) -> None:
    """Write epoch records, the job's epoch and losses as of the last of them, and
    snapshots; an epoch or snapshot written before (by an earlier attempt) is replaced,
    except that a snapshot without a checkpoint keeps the checkpoint stored at its epoch
    (the same weights: early stopping restored them)."""
    if records:
        upsert_history(session, job_id, records)
        last = records[-1]
        progress = {"epoch": last.epoch, "loss": last.loss, "val_loss": last.val_loss}
        update_row(session, JobRow, job_id, **progress)
    upsert_snapshots(session, snapshots)
