"""Jobs on either engine: the runner's chunks of epochs stop at every checkpoint epoch,
each snapshot holds its epoch's weights, and each checkpoint names the engine that made
it and resumes bit for bit."""

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.core import RunSpec, Trainer
from service.core.datasets import generate
from service.core.serialization import unpack
from service.db import JobStatus, make_session_factory
from service.jobs.worker import Worker
from tests.jobs.worker_helpers import (
    add_dataset,
    flat_bytes,
    history_epochs,
    queue_job,
    read_job,
    snapshots,
    spec_with,
    uninterrupted_weights,
    worker_settings,
)


@pytest.fixture
def session_factory(db_engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield make_session_factory(db_engine)


@pytest.mark.parametrize("engine", ["numpy", "compiled"])
def test_a_job_checkpoints_at_every_multiple_on_either_engine(
    migrated_url: str, session_factory: sessionmaker[Session], engine: str
) -> None:
    inputs, targets = generate("xor", 4)
    dataset_id = add_dataset(session_factory, inputs, targets)
    spec = spec_with(epochs=1000, engine=engine)
    job_id = queue_job(session_factory, dataset_id, spec, checkpoint_every=7)

    with Worker(worker_settings(migrated_url)) as worker:
        worker.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert history_epochs(session_factory, job_id) == list(range(1, 1001))
    saved = snapshots(session_factory, job_id)
    assert [s.epoch for s in saved] == [*range(7, 1000, 7), 1000]
    for snapshot in saved:
        assert snapshot.checkpoint is not None
        meta, _ = unpack("checkpoint", snapshot.checkpoint)
        assert meta["engine"] == engine
    assert flat_bytes(saved[-1].weights) == flat_bytes(uninterrupted_weights(spec, inputs, targets))


@pytest.mark.parametrize("engine", ["numpy", "compiled"])
def test_every_snapshot_holds_the_weights_of_its_epoch_and_resumes_from_there(
    migrated_url: str, session_factory: sessionmaker[Session], engine: str
) -> None:
    """A fast job's snapshots are written together at a flush: each still holds its own
    epoch's weights, bit for bit those of a run trained up to that epoch, and a checkpoint
    that resumes to the uninterrupted run's end."""
    inputs, targets = generate("xor", 4)
    dataset_id = add_dataset(session_factory, inputs, targets)
    spec = spec_with(epochs=60, engine=engine)
    job_id = queue_job(session_factory, dataset_id, spec, checkpoint_every=4)

    with Worker(worker_settings(migrated_url)) as worker:
        worker.run(threading.Event(), until_idle=True)

    assert read_job(session_factory, job_id).status == JobStatus.SUCCEEDED
    assert history_epochs(session_factory, job_id) == list(range(1, 61))
    saved = snapshots(session_factory, job_id)
    assert [s.epoch for s in saved] == list(range(4, 61, 4))
    final = flat_bytes(uninterrupted_weights(spec, inputs, targets))
    reference = Trainer(RunSpec.from_dict(spec), inputs, targets)
    for snapshot in saved:
        while reference.epoch < snapshot.epoch:
            reference.train_epochs(snapshot.epoch - reference.epoch)
        assert flat_bytes(snapshot.weights) == flat_bytes(reference.model().to_bytes())
        resumed = Trainer(RunSpec.from_dict(spec), inputs, targets, snapshot.checkpoint)
        assert resumed.epoch == snapshot.epoch
        for _ in resumed.run():
            pass
        assert flat_bytes(resumed.model().to_bytes()) == final
