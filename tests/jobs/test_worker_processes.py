"""Real `backprop worker` processes: sharing a queue, SIGTERM hand-back, crash recovery."""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from service.core.datasets import generate
from service.db import JobRow, JobStatus, SnapshotRow, make_session_factory
from service.jobs.worker import EXIT_GRACE_EXPIRED, Worker
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

REPOSITORY = Path(__file__).resolve().parents[2]


class WorkerStarter(Protocol):
    def __call__(self, **env: str) -> subprocess.Popen[bytes]: ...


@pytest.fixture
def session_factory(db_engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield make_session_factory(db_engine)


@pytest.fixture
def start_worker(migrated_url: str, tmp_path: Path) -> Iterator[WorkerStarter]:
    """Starts `backprop worker` processes on the test's database; kills leftovers after."""
    processes: list[subprocess.Popen[bytes]] = []
    env = {
        **os.environ,
        "BACKPROP_DATABASE_URL": migrated_url,
        "BACKPROP_POLL_INTERVAL_SECONDS": "0.05",
        "BACKPROP_HEARTBEAT_SECONDS": "0.2",
        "BACKPROP_WORKERS": "2",
    }

    def start(**more_env: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"worker-{len(processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"],
            cwd=REPOSITORY,
            env={**env, **more_env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def stop_gracefully(process: subprocess.Popen[bytes]) -> int:
    """Send SIGTERM and return the exit code, which must come within a few seconds."""
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=10)


def test_two_worker_processes_run_each_of_20_jobs_exactly_once(
    session_factory: sessionmaker[Session], start_worker: WorkerStarter
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    # One model name for all, so versions are registered by both workers at once.
    job_ids = [
        queue_job(session_factory, dataset_id, spec_with(epochs=200, seed=n), "shared")
        for n in range(20)
    ]
    workers = [start_worker(), start_worker()]

    def all_ended() -> bool:
        with session_factory.begin() as session:
            statuses = session.scalars(select(JobRow.status).where(JobRow.id.in_(job_ids)))
            return all(status in (JobStatus.SUCCEEDED, JobStatus.FAILED) for status in statuses)

    wait_for(all_ended, 60, "both workers to finish all 20 jobs")
    assert [stop_gracefully(process) for process in workers] == [0, 0]

    jobs = [read_job(session_factory, job_id) for job_id in job_ids]
    assert [(job.status, job.error, job.attempts) for job in jobs] == [
        (JobStatus.SUCCEEDED, None, 1)
    ] * 20
    assert sorted(job.model_version or 0 for job in jobs) == list(range(1, 21))
    for job in jobs:
        assert history_epochs(session_factory, job.id) == list(range(1, 201))
    # Which worker got how many jobs is up to timing; each job names one of the two.
    pids = {f":{process.pid}:" for process in workers}
    assert all(any(pid in (job.claimed_by or "") for pid in pids) for job in jobs)


def test_sigterm_hands_the_running_job_back_and_another_worker_finishes_it_identically(
    migrated_url: str, session_factory: sessionmaker[Session], start_worker: WorkerStarter
) -> None:
    inputs, targets = generate("xor", 100, noise=0.1)
    # A few seconds of training (on the NumPy engine: the compiled one takes milliseconds),
    # so SIGTERM surely lands while the job runs.
    epochs = 1500
    spec = spec_with(epochs=epochs, learning_rate=0.01, engine="numpy")
    job_id = queue_job(
        session_factory, add_dataset(session_factory, inputs, targets), spec, checkpoint_every=250
    )
    first = start_worker()
    wait_for(lambda: read_job(session_factory, job_id).epoch, 30, "the job to make progress")
    assert stop_gracefully(first) == 0

    handed_back = read_job(session_factory, job_id)
    assert handed_back.status == JobStatus.QUEUED, handed_back.error
    assert (handed_back.lease_token, handed_back.heartbeat_at) == (None, None)
    assert handed_back.attempts == 0  # a deliberate stop uses up no attempt
    stopped_at = handed_back.epoch
    assert 0 < stopped_at < epochs
    assert snapshots(session_factory, job_id)[-1].epoch == stopped_at

    with Worker(worker_settings(migrated_url)) as second:
        second.run(threading.Event(), until_idle=True)

    job = read_job(session_factory, job_id)
    assert (job.status, job.epoch, job.attempts) == (JobStatus.SUCCEEDED, epochs, 1)
    assert history_epochs(session_factory, job_id) == list(range(1, epochs + 1))
    final = snapshots(session_factory, job_id)[-1]
    assert final.epoch == epochs
    assert flat_bytes(final.weights) == flat_bytes(uninterrupted_weights(spec, inputs, targets))


def test_killed_worker_job_is_resumed_from_its_checkpoint_by_another_worker(
    migrated_url: str, session_factory: sessionmaker[Session], start_worker: WorkerStarter
) -> None:
    inputs, targets = generate("xor", 100, noise=0.1)
    # Long enough (a few seconds, on the NumPy engine) that the worker is surely still
    # training when killed: snapshots become visible only at the 0.25 s flush.
    epochs = 1500
    spec = spec_with(epochs=epochs, learning_rate=0.01, engine="numpy")
    job_id = queue_job(
        session_factory, add_dataset(session_factory, inputs, targets), spec, checkpoint_every=50
    )
    doomed = start_worker()

    def past_a_checkpoint() -> bool:
        with session_factory.begin() as session:
            job = session.get_one(JobRow, job_id)
            latest = session.scalar(
                select(SnapshotRow.epoch)
                .where(SnapshotRow.job_id == job_id)
                .order_by(SnapshotRow.epoch)
            )
            running = job.status == JobStatus.RUNNING
            return running and latest is not None and job.epoch > latest

    wait_for(past_a_checkpoint, 30, "a checkpoint and history past it")
    doomed.kill()
    doomed.wait()

    lease_timeout = 1.0
    settings = worker_settings(
        migrated_url, lease_timeout_seconds=lease_timeout, retry_backoff_seconds=0
    )
    with Worker(settings) as rescuer:
        lease = wait_for(rescuer.claim, lease_timeout + 10, "the dead worker's lease to expire")
        assert lease is not None
        assert rescuer.run_job(lease, threading.Event()) == JobStatus.SUCCEEDED

    job = read_job(session_factory, job_id)
    assert (job.status, job.epoch, job.attempts) == (JobStatus.SUCCEEDED, epochs, 2)
    assert history_epochs(session_factory, job_id) == list(range(1, epochs + 1))
    final = snapshots(session_factory, job_id)[-1]
    assert flat_bytes(final.weights) == flat_bytes(uninterrupted_weights(spec, inputs, targets))


def test_sigterm_during_an_epoch_longer_than_the_grace_period_exits_in_time_and_the_job_resumes(
    migrated_url: str,
    session_factory: sessionmaker[Session],
    start_worker: WorkerStarter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Epochs of a couple of seconds (one update per sample of 12 000), a checkpoint after
    # each. On NumPy: the compiled engine trains such an epoch within the grace period.
    inputs, targets = generate("xor", 12_000, noise=0.1)
    spec = {
        "network": {"layers": [2, 256, 256, 1], "hidden_activation": "tanh"},
        "training": {"learning_rate": 0.001, "epochs": 2, "seed": 0, "engine": "numpy"},
    }
    dataset_id = add_dataset(session_factory, inputs, targets)
    job_id = queue_job(session_factory, dataset_id, spec, checkpoint_every=1)
    grace = 0.5
    worker = start_worker(BACKPROP_SHUTDOWN_GRACE_SECONDS=str(grace))
    wait_for(
        lambda: [s.epoch for s in snapshots(session_factory, job_id)] == [1],
        60,
        "the first epoch's checkpoint",
    )

    # The second epoch has just begun and needs far longer than the grace period.
    signalled = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == EXIT_GRACE_EXPIRED
    assert time.monotonic() - signalled < grace + 1.5

    # It wrote nothing more: the job still looks running, until its lease expires.
    abandoned = read_job(session_factory, job_id)
    assert (abandoned.status, abandoned.epoch, abandoned.attempts) == (JobStatus.RUNNING, 1, 1)
    assert history_epochs(session_factory, job_id) == [1]

    settings = worker_settings(migrated_url, lease_timeout_seconds=1.0, retry_backoff_seconds=0)
    with (
        caplog.at_level(logging.INFO, logger="service.jobs.runner"),
        Worker(settings) as rescuer,
    ):
        lease = wait_for(rescuer.claim, 10, "the lease to expire and the job to be reaped")
        assert lease is not None and lease.attempt == 2
        assert rescuer.run_job(lease, threading.Event()) == JobStatus.SUCCEEDED
    (resumed,) = [vars(record) for record in caplog.records if record.getMessage() == "job.resumed"]
    assert (resumed["job_id"], resumed["epoch"]) == (job_id, 1)

    job = read_job(session_factory, job_id)
    assert (job.status, job.epoch, job.attempts) == (JobStatus.SUCCEEDED, 2, 2)
    assert history_epochs(session_factory, job_id) == [1, 2]
