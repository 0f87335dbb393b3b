"""Cancellation and leases: a worker writes only while it owns a job, and stale jobs move on."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.core.datasets import generate
from service.db import HistoryRow, JobRow, JobStatus, SnapshotRow, make_session_factory, utc_now
from service.db.jobs import cancel_job
from service.jobs.worker import Worker
from tests.jobs.worker_helpers import (
    add_dataset,
    history_epochs,
    queue_job,
    read_job,
    snapshots,
    spec_with,
    wait_for,
    worker_settings,
)

# Long enough to still be running whenever a test acts on it (about 1.5 ms per epoch).
LONG_SPEC = spec_with(epochs=100_000, learning_rate=0.01)


@pytest.fixture
def session_factory(db_engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield make_session_factory(db_engine)


@pytest.fixture
def long_job(session_factory: sessionmaker[Session]) -> str:
    """A queued job on 100 noisy XOR points that would train for minutes."""
    dataset_id = add_dataset(session_factory, *generate("xor", 100, noise=0.1))
    return queue_job(session_factory, dataset_id, LONG_SPEC, checkpoint_every=1_000_000)


@contextmanager
def worker_in_thread(settings: Settings) -> Iterator[threading.Thread]:
    """A worker running jobs until none is runnable, in a thread of this process."""
    stop = threading.Event()
    with Worker(settings) as worker:
        thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"until_idle": True})
        thread.start()
        try:
            yield thread
        finally:
            stop.set()
            thread.join(timeout=30)


def progress(session_factory: sessionmaker[Session], job_id: str) -> int:
    return read_job(session_factory, job_id).epoch


def pretend_claimed(
    session_factory: sessionmaker[Session], job_id: str, heartbeat_age: float, **values: Any
) -> None:
    """Make the job look claimed by another worker whose last heartbeat is that old."""
    with session_factory.begin() as session:
        session.execute(
            update(JobRow)
            .where(JobRow.id == job_id)
            .values(
                status=JobStatus.RUNNING,
                lease_token="someone-elses-token",
                heartbeat_at=utc_now() - timedelta(seconds=heartbeat_age),
                claimed_by="another-worker",
                started_at=utc_now(),
                **values,
            )
        )


def test_cancel_queued_job_cancels_it_at_once_and_no_worker_runs_it(
    migrated_url: str, session_factory: sessionmaker[Session], long_job: str
) -> None:
    with session_factory.begin() as session:
        assert cancel_job(session, long_job).status == JobStatus.CANCELLED

    with Worker(worker_settings(migrated_url)) as worker:
        assert worker.claim() is None

    job = read_job(session_factory, long_job)
    assert (job.status, job.attempts, job.started_at) == (JobStatus.CANCELLED, 0, None)
    assert job.finished_at is not None
    assert history_epochs(session_factory, long_job) == []


def test_cancel_running_job_stops_it_within_an_epoch_keeping_history_and_a_snapshot(
    migrated_url: str, session_factory: sessionmaker[Session], long_job: str
) -> None:
    # A heartbeat slower than the test: the runner itself sees the cancel when it flushes.
    settings = worker_settings(migrated_url, heartbeat_seconds=60, lease_timeout_seconds=120)
    with worker_in_thread(settings) as thread:
        wait_for(lambda: progress(session_factory, long_job), 20, "the job to make progress")
        with session_factory.begin() as session:
            cancel_job(session, long_job)
        asked = time.monotonic()
        wait_for(
            lambda: read_job(session_factory, long_job).status == JobStatus.CANCELLED,
            10,
            "the worker to cancel the job",
        )
        took = time.monotonic() - asked
        thread.join(timeout=10)
        assert not thread.is_alive()

    # One flush interval (0.25 s) plus an epoch, with room for a slow machine.
    assert took < 2
    job = read_job(session_factory, long_job)
    assert (job.status, job.attempts, job.lease_token) == (JobStatus.CANCELLED, 1, None)
    assert 0 < job.epoch < 100_000
    assert history_epochs(session_factory, long_job) == list(range(1, job.epoch + 1))
    saved = snapshots(session_factory, long_job)
    assert [s.epoch for s in saved] == [job.epoch]
    assert saved[0].checkpoint

    with Worker(worker_settings(migrated_url)) as worker:
        assert worker.claim() is None


def test_runner_whose_lease_was_taken_stops_without_writing(
    migrated_url: str, session_factory: sessionmaker[Session], long_job: str
) -> None:
    with worker_in_thread(worker_settings(migrated_url)) as thread:
        wait_for(lambda: progress(session_factory, long_job), 20, "the job to make progress")
        # Another claimer takes the lease; from here on the first runner must not write.
        pretend_claimed(session_factory, long_job, heartbeat_age=0)
        epoch_when_taken = progress(session_factory, long_job)
        thread.join(timeout=10)
        assert not thread.is_alive()

    job = read_job(session_factory, long_job)
    assert (job.status, job.lease_token) == (JobStatus.RUNNING, "someone-elses-token")
    assert job.epoch == epoch_when_taken
    assert history_epochs(session_factory, long_job) == list(range(1, epoch_when_taken + 1))
    assert snapshots(session_factory, long_job) == []


def test_running_job_with_a_stale_heartbeat_is_reclaimed_and_finished(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    fresh = queue_job(session_factory, dataset_id, spec_with(epochs=30))
    stale = queue_job(session_factory, dataset_id, spec_with(epochs=30))
    pretend_claimed(session_factory, fresh, heartbeat_age=1, attempts=1)
    pretend_claimed(session_factory, stale, heartbeat_age=60, attempts=1)

    # No backoff, so the job that is queued again is due at once.
    settings = worker_settings(migrated_url, lease_timeout_seconds=30, retry_backoff_seconds=0)
    with Worker(settings) as worker:
        worker.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, stale)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.attempts, job.claimed_by) == (2, worker.worker_id)
    assert history_epochs(session_factory, stale) == list(range(1, 31))
    untouched = read_job(session_factory, fresh)
    assert (untouched.status, untouched.claimed_by) == (JobStatus.RUNNING, "another-worker")


def test_job_whose_worker_died_max_attempts_times_ends_failed(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    job_id = queue_job(session_factory, dataset_id, spec_with(epochs=30))
    pretend_claimed(session_factory, job_id, heartbeat_age=60, attempts=3)

    with Worker(worker_settings(migrated_url, max_attempts=3)) as worker:
        worker.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, job_id)
    assert (job.status, job.attempts, job.lease_token) == (JobStatus.FAILED, 3, None)
    assert job.error is not None and "max_attempts=3" in job.error
    assert job.finished_at is not None
    assert history_epochs(session_factory, job_id) == []


def test_stale_job_whose_cancel_was_asked_is_cancelled_not_resumed(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    job_id = queue_job(session_factory, dataset_id, spec_with(epochs=30))
    pretend_claimed(session_factory, job_id, heartbeat_age=60, attempts=1, cancel_requested=True)

    with Worker(worker_settings(migrated_url)) as worker:
        worker.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, job_id)
    assert (job.status, job.attempts) == (JobStatus.CANCELLED, 1)
    with session_factory.begin() as session:
        rows = session.scalar(select(func.count()).select_from(HistoryRow))
        saved = session.scalar(select(func.count()).select_from(SnapshotRow))
    assert (rows, saved) == (0, 0)


def test_job_over_the_wall_clock_limit_fails_with_the_reason_keeping_history(
    migrated_url: str, session_factory: sessionmaker[Session], long_job: str
) -> None:
    with Worker(worker_settings(migrated_url, job_time_limit_seconds=0.5)) as worker:
        worker.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, long_job)
    assert (job.status, job.lease_token) == (JobStatus.FAILED, None)
    assert job.error == (
        "exceeded the wall-clock limit of 0.5 s (BACKPROP_JOB_TIME_LIMIT_SECONDS) "
        f"at epoch {job.epoch}"
    )
    assert 0 < job.epoch < 100_000
    assert job.started_at is not None and job.finished_at is not None
    assert job.finished_at - job.started_at >= timedelta(seconds=0.5)
    assert history_epochs(session_factory, long_job) == list(range(1, job.epoch + 1))
    saved = snapshots(session_factory, long_job)
    assert [s.epoch for s in saved] == [job.epoch]
    assert saved[0].checkpoint


def test_wall_clock_limit_counts_from_the_jobs_first_start(
    migrated_url: str, session_factory: sessionmaker[Session], long_job: str
) -> None:
    # Started an hour ago, then handed back: resuming does not restart the clock.
    with session_factory.begin() as session:
        session.execute(
            update(JobRow)
            .where(JobRow.id == long_job)
            .values(started_at=utc_now() - timedelta(hours=1))
        )

    with Worker(worker_settings(migrated_url, job_time_limit_seconds=60)) as worker:
        worker.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, long_job)
    assert (job.status, job.epoch) == (JobStatus.FAILED, 0)
    assert job.error is not None and "limit of 60 s" in job.error
    assert history_epochs(session_factory, long_job) == []
