"""Helpers shared by the worker tests: data, jobs, settings, polling, reference runs."""

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.core import Model, RunSpec, Trainer
from service.db import HistoryRow, JobRow, SnapshotRow, WorkerRow, utc_now
from service.db.datasets import create_dataset
from service.db.jobs import create_job

T = TypeVar("T")

XOR_SPEC: dict[str, Any] = {
    "network": {"layers": [2, 4, 1], "hidden_activation": "tanh"},
    "training": {"learning_rate": 0.1, "epochs": 200, "seed": 0},
}


def spec_with(epochs: int, **training: Any) -> dict[str, Any]:
    """XOR_SPEC with `epochs` and other training fields replaced."""
    return {
        "network": XOR_SPEC["network"],
        "training": {**XOR_SPEC["training"], "epochs": epochs, **training},
    }


def worker_settings(url: str, **overrides: Any) -> Settings:
    """Settings for an in-process worker: quick polls and heartbeats."""
    values: dict[str, Any] = {
        "database_url": url,
        "poll_interval_seconds": 0.02,
        "heartbeat_seconds": 0.2,
        **overrides,
    }
    return Settings(**values)


def add_dataset(
    session_factory: sessionmaker[Session], inputs: np.ndarray, targets: np.ndarray
) -> str:
    with session_factory.begin() as session:
        return create_dataset(session, "data", inputs, targets, {"kind": "rows"}).id


def queue_job(
    session_factory: sessionmaker[Session],
    dataset_id: str,
    spec: dict[str, Any],
    model_name: str | None = None,
    checkpoint_every: int = 50,
) -> str:
    with session_factory.begin() as session:
        job = create_job(session, dataset_id, RunSpec.from_dict(spec), model_name, checkpoint_every)
        return job.id


def add_worker_row(
    session: Session, worker_id: str, heartbeat_age_seconds: float, job_id: str | None = None
) -> None:
    """The row of a worker on another machine whose last heartbeat is this many seconds old."""
    heartbeat_at = utc_now() - timedelta(seconds=heartbeat_age_seconds)
    session.add(
        WorkerRow(
            id=worker_id,
            hostname="elsewhere",
            pid=1,
            started_at=heartbeat_at,
            heartbeat_at=heartbeat_at,
            job_id=job_id,
        )
    )


def read_job(session_factory: sessionmaker[Session], job_id: str) -> JobRow:
    with session_factory.begin() as session:
        return session.get_one(JobRow, job_id)


def history_epochs(session_factory: sessionmaker[Session], job_id: str) -> list[int]:
    with session_factory.begin() as session:
        query = select(HistoryRow.epoch).where(HistoryRow.job_id == job_id)
        return list(session.scalars(query.order_by(HistoryRow.epoch)))


def snapshots(session_factory: sessionmaker[Session], job_id: str) -> list[SnapshotRow]:
    with session_factory.begin() as session:
        query = select(SnapshotRow).where(SnapshotRow.job_id == job_id).order_by(SnapshotRow.epoch)
        return list(session.scalars(query))


def wait_for(condition: Callable[[], T], timeout: float, what: str) -> T:
    """Poll `condition` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def flat_bytes(weights: bytes) -> bytes:
    """The raw parameter bytes of a serialized model, for exact comparisons."""
    return Model.from_bytes(weights).parameters.flat.tobytes()


def uninterrupted_weights(spec: dict[str, Any], inputs: np.ndarray, targets: np.ndarray) -> bytes:
    """Final weights of the same run trained in one go, in this process."""
    trainer = Trainer(RunSpec.from_dict(spec), inputs, targets)
    for _ in trainer.run():
        pass
    return trainer.model().to_bytes()
