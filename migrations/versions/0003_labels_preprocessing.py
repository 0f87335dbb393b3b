"""Labelled datasets, preprocessing in job specs, and the new per-epoch metrics.

Datasets gain `classes`, `class_counts` and `feature_names`; history gains classification
(validation precision, recall, F1) and regression (MAE, R^2) metrics. Every job stored so
far trained on its data as given and, when its network named no `init`, from N(0, 1): its
spec gets `"preprocessing": {"inputs": "none", "targets": "none"}` (and `"init": "normal"`
where missing) written in, so that it resumes as it ran now that the defaults differ.

Revision ID: 0003_labels_preprocessing
Revises: 0002_workers
Create Date: 2026-11-30
"""

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0003_labels_preprocessing"
down_revision: str | None = "0002_workers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HISTORY_METRICS = ("val_precision", "val_recall", "val_f1", "mae", "r2", "val_mae", "val_r2")
# What the jobs stored before this revision meant; written out here rather than imported,
# so the revision keeps doing what it did when the service's code moves on.
LEGACY_PREPROCESSING = {"inputs": "none", "targets": "none"}
LEGACY_INIT = "normal"

jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("spec", sa.JSON))
datasets = sa.table(
    "datasets",
    sa.column("id", sa.String),
    sa.column("targets", sa.LargeBinary),
    sa.column("classes", sa.JSON),
)


def upgrade() -> None:
    """Add the columns, then write the legacy preprocessing into every stored job spec."""
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("classes", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("class_counts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("feature_names", sa.JSON(), nullable=True))
    with op.batch_alter_table("history") as batch:
        for name in HISTORY_METRICS:
            batch.add_column(sa.Column(name, sa.Double(), nullable=True))
    connection = op.get_bind()
    for job_id, spec in connection.execute(sa.select(jobs.c.id, jobs.c.spec)).all():
        if "preprocessing" in spec:
            continue
        network = dict(spec.get("network", {}))
        network.setdefault("init", LEGACY_INIT)
        updated = {**spec, "network": network, "preprocessing": dict(LEGACY_PREPROCESSING)}
        connection.execute(jobs.update().where(jobs.c.id == job_id).values(spec=updated))


def downgrade() -> None:
    """Take `preprocessing` out of the job specs, store labelled datasets' targets encoded as
    before (one 0/1 column for two classes, one-hot columns for more), drop the columns.
    A job that scaled its data trains on the raw data after this: there is no way back."""
    connection = op.get_bind()
    for job_id, spec in connection.execute(sa.select(jobs.c.id, jobs.c.spec)).all():
        if "preprocessing" in spec:
            old = {key: value for key, value in spec.items() if key != "preprocessing"}
            connection.execute(jobs.update().where(jobs.c.id == job_id).values(spec=old))
    labelled = sa.select(datasets.c.id, datasets.c.classes)
    for dataset_id, classes in connection.execute(labelled).all():
        if classes is None:  # regression data, stored as it always was
            continue
        # One dataset's targets in memory at a time.
        targets: bytes = connection.execute(
            sa.select(datasets.c.targets).where(datasets.c.id == dataset_id)
        ).scalar_one()
        encoded = _encoded(np.load(io.BytesIO(targets), allow_pickle=False), len(classes))
        connection.execute(
            datasets.update().where(datasets.c.id == dataset_id).values(targets=_npy(encoded))
        )
    with op.batch_alter_table("history") as batch:
        for name in HISTORY_METRICS:
            batch.drop_column(name)
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("feature_names")
        batch.drop_column("class_counts")
        batch.drop_column("classes")


def _encoded(indices: Any, n_classes: int) -> Any:
    if n_classes == 2:
        return indices.astype(np.float64)[:, None]
    return np.eye(n_classes)[indices]


def _npy(array: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
