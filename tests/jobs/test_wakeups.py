"""A queued job wakes an idle SQLite worker through the pipe beside the database file."""

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.core import RunSpec
from service.core.datasets import generate
from service.db import JobStatus, make_engine, make_session_factory
from service.db.jobs import TERMINAL, create_job
from service.db.migrate import upgrade
from service.db.wakeups import WakePipe, pipe_path
from service.jobs.worker import Worker
from tests.jobs.worker_helpers import (
    add_dataset,
    queue_job,
    read_job,
    spec_with,
    wait_for,
    worker_settings,
)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'backprop.db'}"
    upgrade(url)
    return url


@pytest.fixture
def session_factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def pipe(sqlite_url: str) -> Iterator[WakePipe]:
    opened = WakePipe.open(make_url(sqlite_url))
    assert opened is not None
    yield opened
    opened.close()


def test_the_pipe_sits_beside_the_database_file_and_only_for_sqlite_files(tmp_path: Path) -> None:
    assert pipe_path(make_url(f"sqlite:///{tmp_path}/jobs.db")) == tmp_path / "jobs.db-wake"
    assert pipe_path(make_url("sqlite://")) is None
    assert pipe_path(make_url("sqlite:///:memory:")) is None
    assert pipe_path(make_url("postgresql+psycopg://u@localhost/db")) is None


def test_a_committed_job_wakes_a_waiting_worker(
    session_factory: sessionmaker[Session], pipe: WakePipe
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    woken: list[bool] = []
    # Long enough that only the wake-up, not the timeout, can end the wait in this test.
    waiter = threading.Thread(target=lambda: woken.append(pipe.wait(600, threading.Event())))
    waiter.start()

    queue_job(session_factory, dataset_id, spec_with(5))

    waiter.join(60)
    assert woken == [True]


def test_a_rolled_back_job_wakes_nobody(
    session_factory: sessionmaker[Session], pipe: WakePipe
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    with session_factory() as session:
        create_job(session, dataset_id, RunSpec.from_dict(spec_with(5)), None, 50)
        session.rollback()

    assert pipe.wait(0.2, threading.Event()) is False


def test_an_idle_worker_claims_a_new_job_long_before_its_next_poll(
    sqlite_url: str, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    # Polls 5 to 15 minutes apart: within this test only a wake-up gets the job claimed.
    settings = worker_settings(sqlite_url, poll_interval_seconds=600)
    stop = threading.Event()
    with Worker(settings) as worker:
        pipe = worker.notifications
        assert isinstance(pipe, WakePipe)
        waiting = threading.Event()

        def wait(timeout: float, stop: threading.Event) -> bool:
            waiting.set()
            return WakePipe.wait(pipe, timeout, stop)

        pipe.wait = wait  # type: ignore[method-assign]
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        try:
            # Its first claim found nothing: the worker waits on the pipe.
            wait_for(waiting.is_set, 30, "the worker to wait")
            job_id = queue_job(session_factory, dataset_id, spec_with(5))
            wait_for(
                lambda: read_job(session_factory, job_id).status in TERMINAL, 60, "the job to end"
            )
        finally:
            stop.set()
            thread.join(30)
    assert read_job(session_factory, job_id).status == JobStatus.SUCCEEDED


def test_a_worker_that_cannot_open_the_pipe_says_why_and_polls(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = pipe_path(make_url(sqlite_url))
    assert path is not None
    path.write_text("a file, not a pipe")

    with Worker(worker_settings(sqlite_url)) as worker:
        assert worker.notifications is None
    assert "worker.wake_pipe_failed" in caplog.messages
