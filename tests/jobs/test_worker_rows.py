"""The workers table: a worker has a row from start to clean exit, heartbeats it idle or
busy, and the rows of workers that died are reaped."""

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from service.core.datasets import generate
from service.db import JobStatus, WorkerRow, make_session_factory
from service.jobs.worker import STALE_WORKER_LEASE_TIMEOUTS, Worker
from tests.jobs.worker_helpers import (
    add_dataset,
    add_worker_row,
    queue_job,
    read_job,
    spec_with,
    wait_for,
    worker_settings,
)
from tests.log_capture import json_logs

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def session_factory(db_engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield make_session_factory(db_engine)


def worker_rows(session_factory: sessionmaker[Session]) -> dict[str, WorkerRow]:
    with session_factory.begin() as session:
        return {row.id: row for row in session.scalars(select(WorkerRow))}


def heartbeat_of(session_factory: sessionmaker[Session], worker_id: str) -> datetime:
    return worker_rows(session_factory)[worker_id].heartbeat_at


def test_a_worker_process_registers_on_start_and_its_row_goes_on_clean_exit(
    migrated_url: str, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "BACKPROP_DATABASE_URL": migrated_url,
        "BACKPROP_POLL_INTERVAL_SECONDS": "0.05",
        "BACKPROP_HEARTBEAT_SECONDS": "0.2",
    }
    with (tmp_path / "worker.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"],
            cwd=REPOSITORY,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        (row,) = wait_for(lambda: list(worker_rows(session_factory).values()), 20, "a row")
        assert (row.hostname, row.pid, row.job_id) == (socket.gethostname(), process.pid, None)
        assert row.id.startswith(f"{row.hostname}:{row.pid}:")
        assert row.started_at <= row.heartbeat_at

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert worker_rows(session_factory) == {}


def test_an_idle_worker_heartbeats_its_row(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    stop = threading.Event()
    with Worker(worker_settings(migrated_url)) as worker:
        first = heartbeat_of(session_factory, worker.worker_id)
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        try:
            wait_for(
                lambda: heartbeat_of(session_factory, worker.worker_id) > first,
                10,
                "the idle worker's heartbeat to advance",
            )
            assert worker_rows(session_factory)[worker.worker_id].job_id is None
        finally:
            stop.set()
            thread.join(timeout=30)
    assert worker_rows(session_factory) == {}


def test_a_busy_worker_row_names_its_job_and_goes_idle_when_it_ends(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 100, noise=0.1))
    job_id = queue_job(
        session_factory, dataset_id, spec_with(epochs=100_000), checkpoint_every=1_000_000
    )
    stop = threading.Event()
    with Worker(worker_settings(migrated_url)) as worker:
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        try:
            wait_for(
                lambda: worker_rows(session_factory)[worker.worker_id].job_id == job_id,
                20,
                "the worker's row to name its job",
            )
            first = heartbeat_of(session_factory, worker.worker_id)
            wait_for(
                lambda: heartbeat_of(session_factory, worker.worker_id) > first,
                10,
                "the busy worker's heartbeat to advance",
            )
            stop.set()
            thread.join(timeout=30)
            assert read_job(session_factory, job_id).status == JobStatus.QUEUED
            assert worker_rows(session_factory)[worker.worker_id].job_id is None
        finally:
            stop.set()
            thread.join(timeout=30)


def test_a_stale_worker_row_is_reaped_and_fresh_ones_are_kept(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    settings = worker_settings(migrated_url)
    stale_after = STALE_WORKER_LEASE_TIMEOUTS * settings.lease_timeout_seconds
    with session_factory.begin() as session:
        for worker_id, age in (("dead", stale_after + 60), ("slow", stale_after - 60)):
            add_worker_row(session, worker_id, age)

    with json_logs() as logs, Worker(settings) as worker:
        assert worker.claim() is None
        assert set(worker_rows(session_factory)) == {"slow", worker.worker_id}

    (reaped,) = [line for line in logs.all() if line["message"] == "worker.reaped"]
    assert (reaped["level"], reaped["stale_worker"]) == ("WARNING", "dead")


def test_a_live_worker_whose_row_was_reaped_writes_it_again_at_its_next_heartbeat(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    with Worker(worker_settings(migrated_url)) as worker:
        with session_factory.begin() as session:
            session.execute(text("DELETE FROM workers"))
        worker.beat(None)
        row = worker_rows(session_factory)[worker.worker_id]
        assert (row.pid, row.job_id) == (os.getpid(), None)


def test_a_worker_that_cannot_write_its_row_still_runs_its_job(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    job_id = queue_job(session_factory, dataset_id, spec_with(epochs=30), checkpoint_every=10)
    with session_factory.begin() as session:
        session.execute(text("DROP TABLE workers"))

    with json_logs() as logs, Worker(worker_settings(migrated_url)) as worker:
        worker.run(threading.Event(), until_idle=True)

    assert read_job(session_factory, job_id).status == JobStatus.SUCCEEDED
    failures = {line["message"] for line in logs.all() if line["level"] == "ERROR"}
    assert failures == {
        "worker.register_failed",
        "worker.reap_workers_failed",
        "worker.heartbeat_failed",
        "worker.deregister_failed",
    }
