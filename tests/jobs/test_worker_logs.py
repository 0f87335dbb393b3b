"""Every line a worker logs about a job carries the job's id, the worker and the attempt."""

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.core.datasets import generate
from service.db import make_session_factory, utc_now
from service.db.leases import claim_next
from service.jobs.worker import Worker
from tests.jobs.worker_helpers import add_dataset, queue_job, spec_with, worker_settings
from tests.log_capture import json_logs


@pytest.fixture
def session_factory(db_engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield make_session_factory(db_engine)


def test_a_jobs_log_lines_carry_its_id_from_claim_to_finish(
    session_factory: sessionmaker[Session], migrated_url: str
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    job_id = queue_job(session_factory, dataset_id, spec_with(epochs=30), checkpoint_every=10)

    with json_logs() as logs, Worker(worker_settings(migrated_url)) as worker:
        worker.run(threading.Event(), until_idle=True)

    about_jobs = [line for line in logs.all() if line["message"].startswith("job.")]
    events = [line["message"] for line in about_jobs]
    assert events[:2] == ["job.claimed", "job.started"]
    # Checkpoints are written at the next flush, so one line may cover several.
    checkpoints = [line["epoch"] for line in about_jobs if line["message"] == "job.checkpoint"]
    assert checkpoints[-1:] == [30]
    assert events[-1] == "job.succeeded"
    for line in about_jobs:
        assert (line["job_id"], line["worker"], line["attempt"]) == (job_id, worker.worker_id, 1)


def test_a_reaped_job_is_named_in_the_line_that_reaps_it(
    session_factory: sessionmaker[Session], migrated_url: str
) -> None:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    stale_id = queue_job(session_factory, dataset_id, spec_with(epochs=5))
    with session_factory.begin() as session:
        # Claimed by a worker that died a minute ago.
        claim_next(session, "dead-worker", now=utc_now() - timedelta(minutes=1))

    with json_logs() as logs, Worker(worker_settings(migrated_url)) as worker:
        lease = worker.claim()
        assert lease is None  # requeued with a backoff, not yet due

    (reaped,) = [line for line in logs.all() if line["message"] == "job.reaped"]
    assert reaped["level"] == "WARNING"
    assert (reaped["job_id"], reaped["worker"], reaped["outcome"]) == (
        stale_id,
        worker.worker_id,
        "requeued",
    )
