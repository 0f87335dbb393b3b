"""`backprop db backup` while real `backprop worker` processes train, then `backprop db
restore` into a new database that is served and trained on: what an operator does after
losing the machine the database was on."""

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.config import Settings
from service.db import JobStatus, make_engine, make_session_factory
from tests.conftest import POSTGRES_URL_ENV, _fresh_postgres_database
from tests.helpers import backprop_command
from tests.jobs.test_faults import (
    CHECKPOINT_EVERY,
    MODEL_NAME,
    MOONS,
    WorkerProcesses,
    assert_clean_logs,
    assert_finished_like_uninterrupted,
    jobs_by_id,
    moons_spec,
    session_factory,
    workers,
)
from tests.jobs.worker_helpers import add_dataset, queue_job, read_job, snapshots, wait_for

__all__ = ["session_factory", "workers"]  # fixtures, imported so that pytest finds them here

# Long enough that both are mid-run when the backup is taken: two seconds or more each.
RUNNING_EPOCHS = 1500


@pytest.fixture
def restore_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind as the test's, never migrated: the restore's."""
    if make_url(database_url).get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.db'}"
    else:
        yield from _fresh_postgres_database(os.environ[POSTGRES_URL_ENV])


def sessions(url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def restored(restore_url: str) -> Iterator[sessionmaker[Session]]:
    yield from sessions(restore_url)


def db_command(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BACKPROP_DATABASE_URL": url}
    return subprocess.run(
        backprop_command("db", *args), env=env, capture_output=True, text=True, timeout=120
    )


def served_predictions(url: str) -> dict[str, Any]:
    """What the API serving `url` answers for the model's predictions on the moons."""
    with TestClient(create_app(Settings(database_url=url))) as client:
        response = client.post(
            f"/v1/models/{MODEL_NAME}/predict", json={"inputs": MOONS[0].tolist()}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return {key: body[key] for key in ("outputs", "probabilities", "labels")}


def test_a_backup_taken_while_jobs_train_is_restored_served_and_its_running_jobs_finish(
    migrated_url: str,
    restore_url: str,
    workers: WorkerProcesses,
    session_factory: sessionmaker[Session],
    restored: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    dataset_id = add_dataset(session_factory, *MOONS)
    finished_spec = moons_spec(epochs=100, seed=0)
    finished = queue_job(session_factory, dataset_id, finished_spec, MODEL_NAME, CHECKPOINT_EVERY)
    for _ in range(2):
        workers.start()
    wait_for(
        lambda: read_job(session_factory, finished).status == JobStatus.SUCCEEDED,
        60,
        "the first job to succeed",
    )
    predictions = served_predictions(migrated_url)
    running_specs = {
        queue_job(session_factory, dataset_id, spec, "resumed", CHECKPOINT_EVERY): spec
        for spec in (moons_spec(RUNNING_EPOCHS, seed=1), moons_spec(RUNNING_EPOCHS, seed=2))
    }
    # Both training, each with a checkpoint written, so that they resume from one.
    wait_for(
        lambda: all(snapshots(session_factory, job_id) for job_id in running_specs),
        60,
        "both jobs to write a checkpoint",
    )

    backup_file = tmp_path / "backprop.backup"
    made = db_command(migrated_url, "backup", str(backup_file))
    assert made.returncode == 0, made.stderr
    assert made.stderr.startswith("backup of revision 0004_models_travel written to"), made.stderr
    if make_url(migrated_url).get_backend_name() == "sqlite":
        with closing(sqlite3.connect(backup_file)) as copy:
            assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    # The backup stopped nothing: the jobs trained on (or ended) meanwhile.
    during = jobs_by_id(session_factory, list(running_specs))
    assert {job.status for job in during.values()} <= {JobStatus.RUNNING, JobStatus.SUCCEEDED}
    # The machine is lost: its workers with it.
    workers.kill_all()

    done = db_command(restore_url, "restore", str(backup_file))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"restored {backup_file} (revision 0004_models_travel)"]

    # The jobs were mid-run in the backup, under leases of workers that are gone.
    at_backup = jobs_by_id(restored, list(running_specs))
    for job in at_backup.values():
        assert job.status == JobStatus.RUNNING
        assert CHECKPOINT_EVERY <= job.epoch < RUNNING_EPOCHS
    # Served from the restored database, the finished model answers bit for bit as before.
    assert served_predictions(restore_url) == predictions
    assert_finished_like_uninterrupted(restored, finished, finished_spec)

    (tmp_path / "after").mkdir()
    rescuers = WorkerProcesses(restore_url, tmp_path / "after")
    try:
        for _ in range(2):
            rescuers.start()
        wait_for(
            lambda: all(
                job.status == JobStatus.SUCCEEDED
                for job in jobs_by_id(restored, list(running_specs)).values()
            ),
            120,
            "the restored running jobs to succeed",
        )
        assert rescuers.stop() == [0, 0]
    finally:
        rescuers.kill_all()
    assert_clean_logs(rescuers)
    for job_id, spec in running_specs.items():
        assert_finished_like_uninterrupted(restored, job_id, spec)
        # Reclaimed once its lease from the lost machine expired (on a loaded machine a
        # rescuer can miss its own 1 s lease too and the job is reclaimed again).
        assert read_job(restored, job_id).attempts > at_backup[job_id].attempts
