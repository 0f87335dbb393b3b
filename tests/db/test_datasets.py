"""Datasets as stored: compact inputs that read back exactly, labels kept as class indices."""

import io

import numpy as np
import pytest
from sqlalchemy.orm import Session

from service.core import Labels
from service.db.blobs import array_to_npy, npy_to_array, npy_view
from service.db.datasets import STREAM_ABOVE_BYTES, create_dataset, dataset_data, get_dataset


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


def test_inputs_beyond_float32s_range_are_stored_as_float64(db_session: Session) -> None:
    huge = np.array([[3.4028235677973366e38], [1.0]])  # just above float32's largest

    dataset = create_dataset(db_session, "huge", huge, np.ones((2, 1)), {"kind": "rows"})

    assert npy_to_array(dataset.inputs).dtype == np.float64
    assert np.array_equal(dataset_data(dataset)[0], huge)


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


def test_large_inputs_read_back_exactly_whichever_way_the_database_was_given_them(
    db_session: Session,
) -> None:
    # Over STREAM_ABOVE_BYTES as float64 (random decimals do not fit float32): SQLite gets
    # them a piece at a time through its blob I/O, PostgreSQL bound whole.
    rows = STREAM_ABOVE_BYTES // (4 * 8) + 1000
    inputs = np.random.default_rng(0).standard_normal((rows, 4))
    targets = inputs[:, :1] * 2

    row = create_dataset(db_session, "large", inputs, targets, {"kind": "rows"})
    dataset_id = row.id
    db_session.commit()
    db_session.expunge_all()

    stored = get_dataset(db_session, dataset_id)
    read_inputs, read_targets = dataset_data(stored)
    assert (stored.n_samples, stored.n_features) == (rows, 4)
    assert np.array_equal(read_inputs, inputs)
    assert isinstance(read_targets, np.ndarray) and np.array_equal(read_targets, targets)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12.0).reshape(3, 4),
        np.arange(5),
        np.zeros((0, 3)),
        np.array(3.5),
        np.random.default_rng(1).random((200_000, 7)),  # several copy blocks
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    ],
)
def test_npy_bytes_are_those_numpy_writes(array: np.ndarray) -> None:
    expected = io.BytesIO()
    np.save(expected, array.copy(order="C"), allow_pickle=False)

    assert bytes(array_to_npy(array)) == expected.getvalue()
    assert np.array_equal(npy_view(array_to_npy(array)), array)
