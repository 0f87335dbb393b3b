"""Each model round-trips through the real database, and the constraints hold."""

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from service.db import (
    DatasetRow,
    HistoryRow,
    JobRow,
    JobStatus,
    ModelAliasRow,
    ModelRow,
    ModelVersionRow,
    SnapshotRow,
    make_session_factory,
)
from service.db.blobs import array_to_npy, npy_to_array

# Every byte value, so a text-typed column or an encoding step would corrupt it.
ALL_BYTES = bytes(range(256))


def add_dataset(session: Session) -> DatasetRow:
    inputs = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    targets = np.array([[0.0], [1.0], [1.0], [0.0]])
    dataset = DatasetRow(
        name="xor",
        n_samples=4,
        n_features=2,
        n_targets=1,
        inputs=array_to_npy(inputs),
        targets=array_to_npy(targets),
        source={"kind": "rows"},
    )
    session.add(dataset)
    session.flush()
    return dataset


def add_job(session: Session, dataset_id: str) -> JobRow:
    job = JobRow(
        dataset_id=dataset_id,
        model_name="xor-net",
        spec={"network": {"layers": [2, 2, 1]}, "training": {"epochs": 10, "seed": 0}},
        checkpoint_every=5,
        epochs_total=10,
    )
    session.add(job)
    session.flush()
    return job


def test_every_model_round_trips_with_binary_blobs(db_engine: Engine) -> None:
    session_factory = make_session_factory(db_engine)
    heartbeat = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with session_factory.begin() as session:
        dataset = add_dataset(session)
        job = add_job(session, dataset.id)
        job.heartbeat_at = heartbeat
        session.add(HistoryRow(job_id=job.id, epoch=1, loss=0.25, rmse=0.5, learning_rate=0.05))
        session.add(SnapshotRow(job_id=job.id, epoch=5, weights=ALL_BYTES, checkpoint=ALL_BYTES))
        session.add(ModelRow(name="xor-net", description="learns XOR"))
        session.flush()
        session.add(
            ModelVersionRow(
                model_name="xor-net", version=1, job_id=job.id, epoch=5, weights=ALL_BYTES * 3
            )
        )
        session.flush()
        session.add(ModelAliasRow(model_name="xor-net", alias="production", version=1))
        dataset_id, job_id = dataset.id, job.id

    with session_factory() as session:
        dataset = session.get_one(DatasetRow, dataset_id)
        np.testing.assert_array_equal(npy_to_array(dataset.inputs)[3], [1.0, 1.0])
        assert npy_to_array(dataset.targets).shape == (4, 1)
        assert dataset.source == {"kind": "rows"}
        assert dataset.created_at.tzinfo == UTC

        job = session.get_one(JobRow, job_id)
        assert job.status is JobStatus.QUEUED
        assert (job.epoch, job.attempts, job.cancel_requested) == (0, 0, False)
        assert job.spec["network"]["layers"] == [2, 2, 1]
        assert job.heartbeat_at == heartbeat
        assert job.heartbeat_at is not None and job.heartbeat_at.tzinfo == UTC
        assert job.loss is None

        history = session.get_one(HistoryRow, (job_id, 1))
        assert (history.loss, history.rmse, history.val_loss) == (0.25, 0.5, None)

        snapshot = session.get_one(SnapshotRow, (job_id, 5))
        assert snapshot.weights == ALL_BYTES
        assert snapshot.checkpoint == ALL_BYTES

        assert session.get_one(ModelRow, "xor-net").description == "learns XOR"
        assert session.get_one(ModelVersionRow, ("xor-net", 1)).weights == ALL_BYTES * 3
        assert session.get_one(ModelAliasRow, ("xor-net", "production")).version == 1


def test_deleting_a_job_cascades_to_history_and_snapshots(db_engine: Engine) -> None:
    session_factory = make_session_factory(db_engine)
    with session_factory.begin() as session:
        job = add_job(session, add_dataset(session).id)
        session.add_all(HistoryRow(job_id=job.id, epoch=epoch, loss=1.0) for epoch in (1, 2))
        session.add(SnapshotRow(job_id=job.id, epoch=2, weights=b"w"))
        session.add(ModelRow(name="xor-net"))
        session.flush()
        session.add(
            ModelVersionRow(model_name="xor-net", version=1, job_id=job.id, epoch=2, weights=b"w")
        )
        job_id = job.id

    with session_factory.begin() as session:
        session.delete(session.get_one(JobRow, job_id))

    with session_factory() as session:
        assert session.scalars(select(HistoryRow)).all() == []
        assert session.scalars(select(SnapshotRow)).all() == []
        # A registered version keeps its weights; it only forgets the job.
        assert session.get_one(ModelVersionRow, ("xor-net", 1)).job_id is None


def test_job_with_unknown_dataset_is_rejected(db_session: Session) -> None:
    db_session.add(JobRow(dataset_id="missing", spec={}, checkpoint_every=1, epochs_total=1))
    with pytest.raises(IntegrityError):
        db_session.commit()


def test_dataset_in_use_by_a_job_cannot_be_deleted(db_engine: Engine) -> None:
    session_factory = make_session_factory(db_engine)
    with session_factory.begin() as session:
        dataset_id = add_job(session, add_dataset(session).id).dataset_id

    with pytest.raises(IntegrityError), session_factory.begin() as session:
        session.delete(session.get_one(DatasetRow, dataset_id))


def test_alias_must_name_an_existing_version(db_session: Session) -> None:
    db_session.add(ModelRow(name="xor-net"))
    db_session.flush()
    db_session.add(ModelAliasRow(model_name="xor-net", alias="production", version=7))
    with pytest.raises(IntegrityError):
        db_session.commit()


def test_unknown_job_status_is_rejected_by_the_database(db_session: Session) -> None:
    job_id = add_job(db_session, add_dataset(db_session).id).id
    db_session.commit()
    with pytest.raises(IntegrityError):
        db_session.execute(text("UPDATE jobs SET status = 'paused' WHERE id = :id"), {"id": job_id})


def test_naive_timestamp_is_refused(db_session: Session) -> None:
    job = add_job(db_session, add_dataset(db_session).id)
    job.heartbeat_at = datetime(2024, 5, 1, 12, 0)
    with pytest.raises(StatementError, match="naive datetime"):
        db_session.flush()


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_npy_blob_round_trips_shape_dtype_and_values(dtype: type[np.generic]) -> None:
    array = np.arange(12, dtype=dtype).reshape(3, 4)
    restored = npy_to_array(array_to_npy(array))
    assert restored.dtype == array.dtype
    np.testing.assert_array_equal(restored, array)


def test_npy_blob_refuses_object_arrays() -> None:
    with pytest.raises(ValueError):
        array_to_npy(np.array([{"a": 1}], dtype=object))
