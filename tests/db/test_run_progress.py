"""A run's progress writes: snapshots rewritten by a later attempt replace the stored ones,
except that one without a checkpoint keeps the checkpoint stored at its epoch."""

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core import RunSpec
from service.db import SnapshotRow
from service.db.datasets import create_dataset
from service.db.jobs import create_job
from service.db.runs import record_progress


def test_rewritten_snapshots_replace_the_stored_ones_and_keep_a_checkpoint(
    db_session: Session,
) -> None:
    inputs = np.array([[0.0, 1.0], [1.0, 0.0]])
    dataset = create_dataset(db_session, "data", inputs, np.array([[1.0], [0.0]]), {})
    spec = RunSpec.from_dict({"network": {"layers": [2, 2, 1]}, "training": {"epochs": 30}})
    job_id = create_job(db_session, dataset.id, spec, None, 10).id

    def snapshot(epoch: int, weights: bytes, checkpoint: bytes | None) -> SnapshotRow:
        return SnapshotRow(job_id=job_id, epoch=epoch, weights=weights, checkpoint=checkpoint)

    record_progress(
        db_session,
        job_id,
        [],
        [snapshot(10, b"w10", b"c10"), snapshot(20, b"w20", b"c20"), snapshot(30, b"w30", b"c30")],
    )
    # A later attempt: epoch 10 again with its checkpoint, epoch 20's weights without one
    # (early stopping restored them), epoch 25 twice in one flush (a divergence keeps the
    # weights of the checkpoint epoch before it).
    record_progress(
        db_session,
        job_id,
        [],
        [
            snapshot(10, b"w10'", b"c10'"),
            snapshot(20, b"w20'", None),
            snapshot(25, b"w25", b"c25"),
            snapshot(25, b"w25'", None),
        ],
    )
    db_session.commit()
    db_session.expire_all()

    rows = db_session.scalars(
        select(SnapshotRow).where(SnapshotRow.job_id == job_id).order_by(SnapshotRow.epoch)
    ).all()
    assert [(row.epoch, row.weights, row.checkpoint) for row in rows] == [
        (10, b"w10'", b"c10'"),
        (20, b"w20'", b"c20"),
        (25, b"w25'", b"c25"),
        (30, b"w30", b"c30"),
    ]
    assert all(row.created_at is not None for row in rows)
