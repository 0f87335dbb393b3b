"""An in-process worker runs jobs to their end: history, snapshots, registry, failures."""

import os
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from service.core.datasets import generate
from service.db import JobStatus, ModelVersionRow, make_session_factory
from service.jobs.worker import JobNotifications, Worker, run_worker
from tests.conftest import POSTGRES_URL_ENV
from tests.jobs.worker_helpers import (
    add_dataset,
    flat_bytes,
    history_epochs,
    queue_job,
    read_job,
    snapshots,
    spec_with,
    uninterrupted_weights,
    wait_for,
    worker_settings,
)


@pytest.fixture
def session_factory(db_engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield make_session_factory(db_engine)


def test_xor_job_succeeds_with_a_row_per_epoch_snapshots_and_model_versions(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    inputs, targets = generate("xor", 4)
    dataset_id = add_dataset(session_factory, inputs, targets)
    spec = spec_with(epochs=500)
    first = queue_job(session_factory, dataset_id, spec, "xor-net", checkpoint_every=60)

    transactions = 0
    with Worker(worker_settings(migrated_url)) as worker:

        @event.listens_for(worker.engine, "begin")
        def count(connection: Connection) -> None:
            nonlocal transactions
            transactions += 1

        worker.run(threading.Event(), until_idle=True)
        second = queue_job(session_factory, dataset_id, spec, "xor-net", checkpoint_every=60)
        worker.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, first)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.epoch, job.attempts, job.error, job.lease_token) == (500, 1, None, None)
    assert job.started_at is not None and job.finished_at is not None
    assert history_epochs(session_factory, first) == list(range(1, 501))
    saved = snapshots(session_factory, first)
    assert [s.epoch for s in saved] == [60, 120, 180, 240, 300, 360, 420, 480, 500]
    assert all(s.checkpoint for s in saved)
    # Two 500-epoch jobs: a transaction per checkpoint and a few more, not one per epoch.
    assert transactions < 45

    with session_factory.begin() as session:
        versions = list(session.scalars(select(ModelVersionRow).order_by(ModelVersionRow.version)))
    assert [(v.version, v.job_id, v.epoch) for v in versions] == [
        (1, first, 500),
        (2, second, 500),
    ]
    assert job.model_version == 1
    assert read_job(session_factory, second).model_version == 2
    assert versions[0].weights == saved[-1].weights
    assert flat_bytes(saved[-1].weights) == flat_bytes(uninterrupted_weights(spec, inputs, targets))


def test_job_without_model_name_registers_nothing(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    job_id = queue_job(session_factory, dataset_id, spec_with(epochs=20), checkpoint_every=50)

    with Worker(worker_settings(migrated_url)) as worker:
        worker.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, job_id)
    assert (job.status, job.model_version) == (JobStatus.SUCCEEDED, None)
    assert [s.epoch for s in snapshots(session_factory, job_id)] == [20]
    with session_factory.begin() as session:
        assert session.scalars(select(ModelVersionRow)).first() is None


def test_early_stopping_job_succeeds_with_its_stop_reason(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    spec = spec_with(
        epochs=5000, early_stopping_patience=3, early_stopping_min_delta=1.0, learning_rate=0.01
    )
    job_id = queue_job(session_factory, dataset_id, spec, "stopper")

    with Worker(worker_settings(migrated_url)) as worker:
        worker.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.stop_reason is not None and "early stopping" in job.stop_reason
    assert history_epochs(session_factory, job_id) == list(range(1, job.epoch + 1))
    # The weights kept are the best epoch's, and their snapshot says so.
    assert job.weights_epoch is not None and job.weights_epoch < job.epoch
    assert [s.epoch for s in snapshots(session_factory, job_id)] == [job.weights_epoch]


def test_diverging_job_fails_with_the_epoch_in_its_error_and_keeps_history(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    spec = spec_with(epochs=500, learning_rate=1000.0)
    job_id = queue_job(session_factory, dataset_id, spec, "never", checkpoint_every=5)

    with Worker(worker_settings(migrated_url)) as worker:
        worker.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error.startswith(f"diverged at epoch {job.epoch + 1}:")
    assert job.finished_at is not None and job.lease_token is None
    assert job.model_version is None
    assert history_epochs(session_factory, job_id) == list(range(1, job.epoch + 1))
    # Every fifth epoch's checkpoint, and the last good epoch's weights, which were kept.
    assert job.weights_epoch == job.epoch
    epochs = sorted({*range(5, job.epoch + 1, 5), job.epoch})
    assert [s.epoch for s in snapshots(session_factory, job_id)] == epochs


def test_job_whose_spec_does_not_fit_its_dataset_fails_with_the_reason(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    inputs, targets = generate("sine", 20)  # one feature; the spec expects two
    dataset_id = add_dataset(session_factory, inputs, targets)
    job_id = queue_job(session_factory, dataset_id, spec_with(epochs=10))

    with Worker(worker_settings(migrated_url)) as worker:
        worker.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and "network.layers[0]" in job.error
    assert history_epochs(session_factory, job_id) == []


def test_worker_refuses_to_start_on_a_database_that_is_not_migrated(database_url: str) -> None:
    with pytest.raises(SystemExit, match="backprop db upgrade"):
        run_worker(worker_settings(database_url))


# Collected only with a PostgreSQL server to test on (as in CI): NOTIFY is PostgreSQL's,
# SQLite workers poll.
if os.environ.get(POSTGRES_URL_ENV):

    @pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
    def test_idle_postgresql_worker_is_woken_by_notify_and_survives_losing_its_listen_connection(
        migrated_url: str, session_factory: sessionmaker[Session]
    ) -> None:
        dataset_id = add_dataset(session_factory, *generate("xor", 4))
        # Polls 3 to 9 s apart: a job taken within 2.5 s was announced, not polled. (With
        # polls 1 to 3 s apart and 0.5 s to take the job, the full suite's load on two
        # cores made the announced pickup miss now and then.)
        settings = worker_settings(migrated_url, poll_interval_seconds=6.0)
        stop = threading.Event()

        def picked_up_within(seconds: float) -> bool:
            queued = time.monotonic()
            job_id = queue_job(session_factory, dataset_id, spec_with(epochs=5))
            wait_for(
                lambda: read_job(session_factory, job_id).status != JobStatus.QUEUED, 30, "a claim"
            )
            took = time.monotonic() - queued
            wait_for(
                lambda: read_job(session_factory, job_id).status == JobStatus.SUCCEEDED, 10, "it"
            )
            return took < seconds

        with Worker(settings) as worker:
            notifications = worker.notifications
            assert isinstance(notifications, JobNotifications)
            thread = threading.Thread(target=worker.run, args=(stop,))
            thread.start()
            try:
                wait_for(lambda: notifications.connection, 10, "the worker to LISTEN")
                assert picked_up_within(2.5)

                # The LISTEN connection dies: the worker polls on and listens again.
                listener = notifications.connection
                assert listener is not None
                with session_factory.begin() as session:
                    session.execute(select(func.pg_terminate_backend(listener.info.backend_pid)))
                assert picked_up_within(20)
                wait_for(
                    lambda: notifications.connection not in (None, listener), 10, "a new LISTEN"
                )
                assert picked_up_within(2.5)
            finally:
                stop.set()
                thread.join(timeout=10)
        assert not thread.is_alive()
