"""The worker trains labelled data and old jobs: labels encoded for the spec's output, the
classes and preprocessing carried into snapshots and versions, and a job stored before
preprocessing existed resuming exactly as it ran."""

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.core import Labels, Model, RunSpec, Trainer
from service.core.serialization import pack, unpack
from service.core.spec import stored_spec
from service.db import JobRow, JobStatus, ModelVersionRow, SnapshotRow, make_session_factory
from service.db.datasets import create_dataset
from service.jobs.worker import Worker
from tests.jobs.worker_helpers import (
    add_dataset,
    flat_bytes,
    queue_job,
    read_job,
    snapshots,
    worker_settings,
)


@pytest.fixture
def session_factory(db_engine: Any) -> Iterator[sessionmaker[Session]]:
    yield make_session_factory(db_engine)


def labelled_data() -> tuple[np.ndarray, Labels]:
    rng = np.random.default_rng(0)
    names = ["setosa", "versicolor", "virginica"]
    values = [names[i % 3] for i in range(30)]
    centres = np.array([[0.0, 0.0], [4.0, 4.0], [8.0, 0.0]]) * 100
    inputs = np.array([centres[names.index(v)] for v in values]) + rng.normal(size=(30, 2))
    return inputs, Labels.from_values(values)


def test_a_labelled_job_trains_on_encoded_labels_and_its_model_names_the_classes(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    inputs, labels = labelled_data()
    with session_factory.begin() as session:
        dataset_id = create_dataset(
            session,
            "iris-like",
            inputs,
            None,
            {"kind": "csv"},
            labels=labels,
            feature_names=["petal_length", "petal_width"],
        ).id
    spec = {
        "network": {"layers": [2, 6, 3], "output_activation": "softmax"},
        "training": {
            "loss": "categorical_crossentropy",
            "epochs": 20,
            "batch_size": 5,
            "validation_split": 0.2,
        },
    }
    job_id = queue_job(session_factory, dataset_id, spec, "iris", checkpoint_every=10)

    with Worker(worker_settings(migrated_url)) as worker:
        worker.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    with session_factory.begin() as session:
        version = session.scalars(select(ModelVersionRow)).one()
        model = Model.from_bytes(version.weights)
    assert model.classes == ("setosa", "versicolor", "virginica")
    assert model.feature_names == ("petal_length", "petal_width")
    assert model.preprocessing is not None
    assert all(
        Model.from_bytes(s.weights).classes == model.classes
        for s in snapshots(session_factory, job_id)
    )
    # The same run in this process, from the one-hot targets the labels encode to.
    reference = Trainer(
        RunSpec.from_dict(spec),
        inputs,
        labels.targets_for(RunSpec.from_dict(spec).network),
        classes=labels.classes,
    )
    for _ in reference.run():
        pass
    assert flat_bytes(version.weights) == reference.model().parameters.flat.tobytes()


# A spec as jobs stored it before preprocessing and `auto` existed.
OLD_SPEC: dict[str, Any] = {
    "network": {"layers": [2, 4, 1], "hidden_activation": "tanh"},
    "training": {"learning_rate": 0.1, "epochs": 40, "seed": 3},
}


def old_checkpoint(checkpoint: bytes) -> bytes:
    """The checkpoint as the trainer wrote it before preprocessing: no preprocessing in
    its spec, nor statistics."""
    meta, arrays = unpack("checkpoint", checkpoint)
    meta["spec"] = {key: value for key, value in meta["spec"].items() if key != "preprocessing"}
    del meta["kind"], meta["format"]
    return pack("checkpoint", meta, arrays)


def test_an_old_job_resumes_from_an_old_checkpoint_byte_identical(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    inputs = np.array([[1.0, 1], [-1, 1], [1, -1], [-1, -1]]) * 50 + 3
    targets = np.array([[1.0], [0], [0], [1]])
    # What migration 0003 writes into the old job's row.
    migrated = stored_spec(OLD_SPEC)
    assert migrated["preprocessing"] == {"inputs": "none", "targets": "none"}
    assert migrated["network"]["init"] == "normal"
    spec = RunSpec.from_dict(migrated)
    straight = Trainer(spec, inputs, targets)
    for _ in straight.run():
        pass
    halfway = Trainer(spec, inputs, targets)
    for record in halfway.run():
        if record.epoch == 20:
            break

    dataset_id = add_dataset(session_factory, inputs, targets)
    job_id = queue_job(session_factory, dataset_id, migrated, checkpoint_every=10)
    with session_factory.begin() as session:
        session.add(
            SnapshotRow(
                job_id=job_id,
                epoch=20,
                weights=halfway.model().to_bytes(),
                checkpoint=old_checkpoint(halfway.checkpoint()),
            )
        )
        session.get_one(JobRow, job_id).epoch = 20

    with Worker(worker_settings(migrated_url)) as worker:
        worker.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.spec == spec.to_dict()
    final = snapshots(session_factory, job_id)[-1]
    assert final.epoch == 40
    assert flat_bytes(final.weights) == straight.model().parameters.flat.tobytes()
