"""Liveness means progress: a real `backprop worker` whose job's writes are wedged by a
lock held from outside (SQLite: `BEGIN EXCLUSIVE` on the file; PostgreSQL: a lock on the
history table) stops renewing the lease and says so, or gives the job up with the reason,
so that the job is never left `running` silently; once the lock is released the job
finishes with history 1..N and the weights of an uninterrupted run.

Settings as in `test_faults` (lease 1 s, heartbeat 0.2 s), with a 2 s stall bound.
"""

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from service.db import JobStatus, make_session_factory
from tests.jobs.test_faults import (
    CHECKPOINT_EVERY,
    MODEL_NAME,
    MOONS,
    POSTGRES_URL_ENV,
    WorkerProcesses,
    assert_finished_like_uninterrupted,
    moons_spec,
)
from tests.jobs.worker_helpers import add_dataset, queue_job, read_job, wait_for

STALL_SECONDS = 2
# Longer than the stall bound, so the worker must act on it before the lock goes.
LOCK_SECONDS = 5


@pytest.fixture
def session_factory(db_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(db_engine)


@pytest.fixture
def workers(migrated_url: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    processes = WorkerProcesses(migrated_url, tmp_path, BACKPROP_STALL_SECONDS=str(STALL_SECONDS))
    try:
        yield processes
    finally:
        processes.kill_all()


def start_training(
    workers: WorkerProcesses, session_factory: sessionmaker[Session], epochs: int
) -> tuple[str, dict[str, object]]:
    """Two workers, one job training past its first checkpoint."""
    spec = moons_spec(epochs, seed=0)
    dataset_id = add_dataset(session_factory, *MOONS)
    job_id = queue_job(session_factory, dataset_id, spec, MODEL_NAME, CHECKPOINT_EVERY)
    workers.start()
    workers.start()
    wait_for(
        lambda: read_job(session_factory, job_id).epoch > CHECKPOINT_EVERY, 60, "the job to train"
    )
    return job_id, spec


def events_of(workers: WorkerProcesses, event: str, job_id: str) -> list[dict[str, object]]:
    return [
        line
        for worker in workers.started
        for line in worker.events(event)
        if line["job_id"] == job_id
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sqlite_file_locked_from_outside_stalls_the_job_visibly_and_it_finishes_after(
    migrated_url: str, workers: WorkerProcesses, session_factory: sessionmaker[Session]
) -> None:
    job_id, spec = start_training(workers, session_factory, epochs=600)
    path = make_url(migrated_url).database
    assert path is not None
    locker = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        # The job's worker, blocked in its write, stops renewing the lease and says so.
        stalled = wait_for(
            lambda: events_of(workers, "job.stalled", job_id), 4 * LOCK_SECONDS, "job.stalled"
        )
        time.sleep(max(0.0, LOCK_SECONDS - (time.monotonic() - locked_at)))
        held_seconds = time.monotonic() - locked_at
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    wait_for(
        lambda: read_job(session_factory, job_id).status == JobStatus.SUCCEEDED,
        60,
        "the job to succeed",
    )
    assert workers.stop() == [0, 0]
    assert held_seconds >= LOCK_SECONDS
    assert stalled[0]["stall_seconds"] == STALL_SECONDS
    assert_finished_like_uninterrupted(session_factory, job_id, spec)
    for worker in workers.started:
        assert "Traceback" not in worker.stderr(), worker.stderr()


# Collected only with a PostgreSQL server to test on (as in CI).
if os.environ.get(POSTGRES_URL_ENV):

    @pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
    def test_a_postgres_table_locked_from_outside_gets_the_job_given_up_and_it_finishes_after(
        migrated_url: str, workers: WorkerProcesses, session_factory: sessionmaker[Session]
    ) -> None:
        job_id, spec = start_training(workers, session_factory, epochs=600)
        engine = create_engine(migrated_url, poolclass=NullPool)
        locked = threading.Event()
        release = threading.Event()

        def hold_lock() -> None:
            # Reads go on; every insert or delete of history rows waits for this.
            with engine.begin() as connection:
                connection.execute(text("LOCK TABLE history IN EXCLUSIVE MODE"))
                locked.set()
                release.wait(60)

        holder = threading.Thread(target=hold_lock)
        holder.start()
        try:
            assert locked.wait(30)
            given_up = wait_for(
                lambda: events_of(workers, "job.given_up", job_id),
                4 * LOCK_SECONDS,
                "the worker to give the job up",
            )
            time.sleep(LOCK_SECONDS)
        finally:
            release.set()
            holder.join()
            engine.dispose()

        wait_for(
            lambda: read_job(session_factory, job_id).status == JobStatus.SUCCEEDED,
            60,
            "the job to succeed",
        )
        assert workers.stop() == [0, 0]
        assert given_up[0]["outcome"] == "queued"
        # A worker's statement waits for a lock at most BACKPROP_STALL_SECONDS.
        assert "lock timeout" in str(given_up[0]["reason"])
        assert read_job(session_factory, job_id).attempts >= 2
        assert_finished_like_uninterrupted(session_factory, job_id, spec)
        for worker in workers.started:
            assert "Traceback" not in worker.stderr(), worker.stderr()
