"""What SQLite's `synchronous = FULL` costs against `NORMAL` (both in WAL mode), side by side.

Run from the repository root:

    .venv/bin/python bench/durability_bench.py [--rounds 3] [--dir DIR]

On a temporary SQLite file per level (in DIR, default the system's temp directory: put
it on the disk the database will live on), alternating the levels each round:

  1. commits/s of one small row each (a history row's size), through the service's engine;
  2. a 1 MB and a 10 MB blob committed alone (a snapshot, a dataset upload);
  3. the notebook's XOR job (examples/notebook.json: 500 epochs, a snapshot every 10)
     trained by an in-process worker, from its claim to `succeeded`.

Prints the medians over the rounds. See bench/README.md, "## Durability".
"""

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

from service.config import Settings
from service.core import RunSpec
from service.core.datasets import generate
from service.db import JobRow, JobStatus, make_engine, make_session_factory
from service.db.datasets import create_dataset
from service.db.engine import SqliteSynchronous
from service.db.jobs import create_job
from service.db.migrate import upgrade
from service.jobs.worker import Worker

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_SPEC = (ROOT / "examples" / "notebook.json").read_text()
LEVELS: tuple[SqliteSynchronous, ...] = ("normal", "full")
SMALL_COMMITS = 2000


def fresh_url(directory: Path, name: str) -> str:
    for suffix in ("", "-wal", "-shm"):
        (directory / f"{name}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{directory / name}"
    upgrade(url)
    return url


def small_commits_per_second(url: str, level: SqliteSynchronous) -> float:
    engine = make_engine(url, sqlite_synchronous=level)
    try:
        with engine.connect() as connection:
            connection.execute(text("CREATE TABLE bench_rows (job TEXT, epoch INT, loss REAL)"))
            connection.commit()
            started = time.perf_counter()
            for epoch in range(SMALL_COMMITS):
                connection.execute(
                    text("INSERT INTO bench_rows VALUES ('job', :epoch, 0.5)"), {"epoch": epoch}
                )
                connection.commit()
            return SMALL_COMMITS / (time.perf_counter() - started)
    finally:
        engine.dispose()


def blob_commit_ms(url: str, level: SqliteSynchronous, size: int) -> float:
    engine = make_engine(url, sqlite_synchronous=level)
    blob = np.random.default_rng(0).bytes(size)
    try:
        with engine.connect() as connection:
            connection.execute(text("CREATE TABLE IF NOT EXISTS bench_blobs (data BLOB)"))
            connection.commit()
            started = time.perf_counter()
            connection.execute(text("INSERT INTO bench_blobs VALUES (:data)"), {"data": blob})
            connection.commit()
            return (time.perf_counter() - started) * 1e3
    finally:
        engine.dispose()


def xor_job_ms(url: str, level: SqliteSynchronous) -> float:
    """Claim to `succeeded` of the notebook's XOR job on an in-process worker."""
    settings = Settings(database_url=url, sqlite_synchronous=level, poll_interval_seconds=0.01)
    engine = make_engine(url, sqlite_synchronous=level)
    session_factory = make_session_factory(engine)
    spec = RunSpec.from_dict(json.loads(NOTEBOOK_SPEC))
    with session_factory.begin() as session:
        inputs, targets = generate("xor", 4, seed=0)
        dataset = create_dataset(session, "xor", inputs, targets, {"kind": "xor"})
        job_id = create_job(session, dataset.id, spec, "xor", 10).id
    with Worker(settings) as worker:
        worker.run(threading.Event(), until_idle=True)
    with session_factory.begin() as session:
        job = session.get_one(JobRow, job_id)
        assert job.status == JobStatus.SUCCEEDED, (job.status, job.error)
        assert job.started_at is not None and job.finished_at is not None
        seconds = (job.finished_at - job.started_at).total_seconds()
    engine.dispose()
    return seconds * 1e3


def median_by_level(
    rounds: int, measure: Callable[[SqliteSynchronous, int], float]
) -> dict[str, float]:
    values: dict[str, list[float]] = {level: [] for level in LEVELS}
    for round_number in range(rounds):
        for level in LEVELS:
            values[level].append(measure(level, round_number))
    return {level: statistics.median(found) for level, found in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the database files go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as name:
        directory = Path(name)

        def run(kind: str) -> Callable[[SqliteSynchronous, int], float]:
            def measure(level: SqliteSynchronous, round_number: int) -> float:
                url = fresh_url(directory, f"{kind}-{level}-{round_number}.db")
                result: dict[str, Callable[[], Any]] = {
                    "small": lambda: small_commits_per_second(url, level),
                    "1mb": lambda: blob_commit_ms(url, level, 1 << 20),
                    "10mb": lambda: blob_commit_ms(url, level, 10 << 20),
                    "xor": lambda: xor_job_ms(url, level),
                }
                return float(result[kind]())

            return measure

        rows = [
            ("one-row commits/s", "small", "{:.0f}"),
            ("1 MB blob commit, ms", "1mb", "{:.1f}"),
            ("10 MB blob commit, ms", "10mb", "{:.1f}"),
            ("XOR job claim..succeeded, ms", "xor", "{:.0f}"),
        ]
        print(f"medians of {args.rounds} rounds, files in {directory}")
        print(f"| measure | {' | '.join(LEVELS)} |")
        print(f"|---|{'---|' * len(LEVELS)}")
        for title, kind, form in rows:
            medians = median_by_level(args.rounds, run(kind))
            cells = " | ".join(form.format(medians[level]) for level in LEVELS)
            print(f"| {title} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
