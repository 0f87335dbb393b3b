"""Datasets as stored: compact inputs that read back exactly, labels kept as class indices."""

import numpy as np
from sqlalchemy.orm import Session

from service.core import Labels
from service.db.blobs import npy_to_array
from service.db.datasets import create_dataset, dataset_data


def test_inputs_are_stored_as_float32_only_where_that_loses_nothing(db_session: Session) -> None:
    pixels = np.arange(12, dtype=np.float64).reshape(6, 2) * 17  # integers: exact in float32
    fine = pixels + 0.1  # 0.1 is not a float32 value
    targets = np.ones((6, 1))

    integer = create_dataset(db_session, "pixels", pixels, targets, {"kind": "rows"})
    decimal = create_dataset(db_session, "fine", fine, targets, {"kind": "rows"})

    assert npy_to_array(integer.inputs).dtype == np.float32
    assert npy_to_array(decimal.inputs).dtype == np.float64
    for row, given in ((integer, pixels), (decimal, fine)):
        inputs, read_targets = dataset_data(row)
        assert inputs.dtype == np.float64 and np.array_equal(inputs, given)
        assert isinstance(read_targets, np.ndarray) and np.array_equal(read_targets, targets)


def test_labels_are_stored_as_indices_and_read_back_with_their_classes(
    db_session: Session,
) -> None:
    labels = Labels.from_values([True, False, True, True])

    row = create_dataset(
        db_session,
        "flags",
        np.zeros((4, 3)),
        None,
        {"kind": "rows"},
        labels=labels,
        feature_names=["a", "b", "c"],
    )
    db_session.commit()
    db_session.expire_all()

    _, read = dataset_data(row)
    assert isinstance(read, Labels)
    assert read.classes == (False, True) and read.indices.tolist() == [1, 0, 1, 1]
    assert (row.task, row.classes, row.class_counts) == ("classification", [False, True], [1, 3])
    assert row.feature_names == ["a", "b", "c"]
    # One 0/1 output unit fits two classes.
    assert row.n_targets == 1
