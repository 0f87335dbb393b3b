"""Dataset queries. Query functions never commit: the caller owns the transaction."""

import sqlite3
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
from sqlalchemy import delete, func, literal_column, select
from sqlalchemy.orm import Session

from service.core.labels import ClassName, Labels
from service.db.blobs import array_to_npy, npy_to_array, npy_view, row_blocks
from service.db.models import DatasetRow, JobRow
from service.db.pagination import decode_cursor, newest_first_page, page_of
from service.errors import Conflict, NotFound

# SQLite gets inputs above this size in pieces, written into a zeroed blob: bound whole, a
# 188 MB blob was copied twice more inside SQLite (the binding and the record), and the
# binding's copy held the GIL for up to 200 ms, stalling every other request. Each piece
# is written with the GIL released.
STREAM_ABOVE_BYTES = 8 * 1024 * 1024
STREAM_PIECE_BYTES = 1024 * 1024


def create_dataset(
    session: Session,
    name: str,
    inputs: np.ndarray | bytes,
    targets: np.ndarray | None,
    source: dict[str, Any],
    *,
    labels: Labels | None = None,
    feature_names: Sequence[str] | None = None,
) -> DatasetRow:
    """Store checked inputs `(n_samples, n_features)` with either regression `targets`
    `(n_samples, n_targets)` or class `labels` (exactly one of them). `inputs` may be
    given as `inputs_npy`'s bytes already, so that a caller holding a large array can let
    go of it before the row is written (the database makes copies of its own)."""
    if (targets is None) == (labels is None):
        raise ValueError("give exactly one of targets and labels")
    if labels is not None:
        # The width a network's output needs by default: one 0/1 unit for two classes.
        n_targets = 1 if labels.n_classes == 2 else labels.n_classes
        stored_targets = array_to_npy(labels.indices, np.int64)
        classes: list[ClassName] | None = list(labels.classes)
        class_counts: list[int] | None = labels.counts()
    else:
        assert targets is not None
        n_targets = int(targets.shape[1])
        stored_targets = array_to_npy(targets, np.float64)
        classes = class_counts = None
    stored_inputs = inputs if isinstance(inputs, bytes | bytearray) else inputs_npy(inputs)
    n_samples, n_features = npy_view(stored_inputs).shape
    streamed = (
        session.get_bind().dialect.name == "sqlite" and len(stored_inputs) > STREAM_ABOVE_BYTES
    )
    dataset = DatasetRow(
        name=name,
        n_samples=n_samples,
        n_features=n_features,
        n_targets=n_targets,
        inputs=func.zeroblob(len(stored_inputs)) if streamed else stored_inputs,
        targets=stored_targets,
        classes=classes,
        class_counts=class_counts,
        feature_names=None if feature_names is None else list(feature_names),
        source=source,
    )
    session.add(dataset)
    session.flush()
    if streamed:
        _write_sqlite_blob(session, dataset.id, stored_inputs)
    return dataset


def _write_sqlite_blob(session: Session, dataset_id: str, data: bytes) -> None:
    """Fill the row's zeroed `inputs` a piece at a time, through SQLite's incremental blob
    I/O, in the session's transaction."""
    rowid = session.scalar(
        select(literal_column("rowid")).select_from(DatasetRow).where(DatasetRow.id == dataset_id)
    )
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, sqlite3.Connection) and isinstance(rowid, int)
    pieces = memoryview(data)
    with connection.blobopen("datasets", "inputs", rowid) as blob:
        for start in range(0, len(pieces), STREAM_PIECE_BYTES):
            blob.write(pieces[start : start + STREAM_PIECE_BYTES])


def inputs_npy(inputs: np.ndarray) -> bytes:
    """Inputs as `.npy` bytes of float32 when that holds every value exactly (integer
    pixels, values read from float32 data), else of float64: half the bytes where nothing
    is lost. Cast straight into the stored bytes, so a large upload is not copied twice."""
    # A value beyond float32's range becomes inf there, fails the comparison, and the
    # inputs are kept as float64: the overflow is expected, not worth a warning.
    with np.errstate(over="ignore"):
        as_float32 = array_to_npy(inputs, np.float32)
    stored = npy_view(as_float32)
    if all(np.array_equal(stored[rows], inputs[rows]) for rows in row_blocks(inputs)):
        return as_float32
    del as_float32
    return array_to_npy(inputs, np.float64)


def get_dataset(session: Session, dataset_id: str, *, for_new_job: bool = False) -> DatasetRow:
    """The dataset `dataset_id`. `for_new_job` holds a key share of its row on PostgreSQL
    until the transaction ends, as the new job's foreign key will: a delete that locked it
    first is waited for (and the dataset is then gone: 404), one that comes later waits
    and then counts the new job (409); never a foreign-key error at the insert."""
    lock = {"read": True, "key_share": True} if for_new_job else None
    dataset = session.get(
        DatasetRow, dataset_id, with_for_update=lock, populate_existing=for_new_job
    )
    if dataset is None:
        raise NotFound(f"dataset {dataset_id} does not exist")
    return dataset


def dataset_data(dataset: DatasetRow) -> tuple[np.ndarray, np.ndarray | Labels]:
    """Inputs `(n_samples, n_features)` float64 and either targets `(n_samples, n_targets)`
    float64 or, for a labelled dataset, its `Labels`."""
    inputs = npy_to_array(dataset.inputs).astype(np.float64)
    stored = npy_to_array(dataset.targets)
    if dataset.classes is not None:
        return inputs, Labels(tuple(dataset.classes), stored.astype(np.int64))
    return inputs, stored.astype(np.float64)


def training_inputs_extent(session: Session, job_id: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Per column `(n_features,)`, the minimum and maximum inputs of the dataset job
    `job_id` trained on; None when the job is gone."""
    stored = session.scalar(
        select(DatasetRow.inputs)
        .join(JobRow, JobRow.dataset_id == DatasetRow.id)
        .where(JobRow.id == job_id)
    )
    if stored is None:
        return None
    inputs = npy_to_array(stored)
    return inputs.min(axis=0).astype(np.float64), inputs.max(axis=0).astype(np.float64)


class Sample(TypedDict):
    """One row of a dataset: its position, its inputs, and its targets or its label."""

    index: int
    inputs: list[float]
    targets: list[float] | None
    label: ClassName | None


def samples_page(
    session: Session, dataset_id: str, limit: int, cursor: str | None
) -> tuple[list[Sample], str | None]:
    """The dataset's rows in order, from the one after the cursor's; returns the page and
    the cursor of the next one."""
    dataset = get_dataset(session, dataset_id)
    start = 0
    if cursor is not None:
        (after,) = decode_cursor(cursor, (int,))
        # Keyset on the row index, as the other lists page on their keys: the rows after
        # it, so a forged index before the first row starts at the first.
        start = max(after + 1, 0)
    inputs, targets = dataset_data(dataset)
    stop = start + limit + 1
    page_inputs = inputs[start:stop].tolist()
    if isinstance(targets, Labels):
        labels = [targets.classes[i] for i in targets.indices[start:stop]]
        rows_labelled = zip(page_inputs, labels, strict=True)
        samples: list[Sample] = [
            {"index": index, "inputs": row_inputs, "targets": None, "label": label}
            for index, (row_inputs, label) in enumerate(rows_labelled, start)
        ]
    else:
        rows = zip(page_inputs, targets[start:stop].tolist(), strict=True)
        samples = [
            {"index": index, "inputs": row_inputs, "targets": row_targets, "label": None}
            for index, (row_inputs, row_targets) in enumerate(rows, start)
        ]
    return page_of(samples, limit, lambda sample: [sample["index"]])


def list_datasets(
    session: Session, limit: int, cursor: str | None
) -> tuple[list[DatasetRow], str | None]:
    """Newest first; returns the page and the cursor of the next one."""
    return newest_first_page(session, DatasetRow, select(DatasetRow), limit, cursor)


def delete_dataset(session: Session, dataset_id: str) -> None:
    """Delete a dataset that no job uses (deleting its jobs first makes it deletable).

    Its blobs are not loaded to delete it. On PostgreSQL the row is locked first, so a job
    being created on it meanwhile (whose insert holds a share of that lock) commits before
    the jobs are counted, and the answer is 409 rather than a foreign-key error.
    """
    locked = select(DatasetRow.id).where(DatasetRow.id == dataset_id).with_for_update()
    if session.scalar(locked) is None:
        raise NotFound(f"dataset {dataset_id} does not exist")
    jobs = session.scalar(
        select(func.count()).select_from(JobRow).where(JobRow.dataset_id == dataset_id)
    )
    if jobs:
        raise Conflict(
            f"dataset {dataset_id} is used by {jobs} training job{'s' if jobs > 1 else ''}; "
            "delete them first"
        )
    session.execute(delete(DatasetRow).where(DatasetRow.id == dataset_id))
