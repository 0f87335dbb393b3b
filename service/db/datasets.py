"""Dataset queries. Query functions never commit: the caller owns the transaction."""

from typing import Any, TypedDict

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.blobs import array_to_npy, npy_to_array
from service.db.models import DatasetRow, JobRow
from service.db.pagination import decode_cursor, newest_first_page, page_of
from service.errors import Conflict, NotFound


def create_dataset(
    session: Session, name: str, inputs: np.ndarray, targets: np.ndarray, source: dict[str, Any]
) -> DatasetRow:
    """Store checked arrays `(n_samples, n_features)` and `(n_samples, n_targets)`."""
    dataset = DatasetRow(
        name=name,
        n_samples=int(inputs.shape[0]),
        n_features=int(inputs.shape[1]),
        n_targets=int(targets.shape[1]),
        inputs=array_to_npy(np.ascontiguousarray(inputs, dtype=np.float64)),
        targets=array_to_npy(np.ascontiguousarray(targets, dtype=np.float64)),
        source=source,
    )
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(session: Session, dataset_id: str) -> DatasetRow:
    dataset = session.get(DatasetRow, dataset_id)
    if dataset is None:
        raise NotFound(f"dataset {dataset_id} does not exist")
    return dataset


def dataset_arrays(dataset: DatasetRow) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets of a stored dataset."""
    return npy_to_array(dataset.inputs), npy_to_array(dataset.targets)


class Sample(TypedDict):
    """One row of a dataset: its position, its inputs and its targets."""

    index: int
    inputs: list[float]
    targets: list[float]


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
    inputs, targets = dataset_arrays(dataset)
    stop = start + limit + 1
    rows = zip(inputs[start:stop].tolist(), targets[start:stop].tolist(), strict=True)
    samples: list[Sample] = [
        {"index": index, "inputs": row_inputs, "targets": row_targets}
        for index, (row_inputs, row_targets) in enumerate(rows, start)
    ]
    return page_of(samples, limit, lambda sample: [sample["index"]])


def list_datasets(
    session: Session, limit: int, cursor: str | None
) -> tuple[list[DatasetRow], str | None]:
    """Newest first; returns the page and the cursor of the next one."""
    return newest_first_page(session, DatasetRow, select(DatasetRow), limit, cursor)


def delete_dataset(session: Session, dataset_id: str) -> None:
    dataset = get_dataset(session, dataset_id)
    if (
        session.scalar(select(JobRow.id).where(JobRow.dataset_id == dataset_id).limit(1))
        is not None
    ):
        raise Conflict(f"dataset {dataset_id} is used by training jobs; delete them first")
    session.delete(dataset)
    session.flush()
