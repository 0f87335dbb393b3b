"""Kill -9 `backprop worker` processes at random moments, N times, and check every job.

Run from the repository root:

    .venv/bin/python bench/crash_bench.py [--kills 100] [--seed 0] [--database sqlite]
    BACKPROP_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/crash_bench.py --database postgresql

The same procedure as `tests/jobs/test_faults.py` (which does it 20 times per database),
imported from there: two jobs (moons, 400 epochs, a checkpoint every 20) train at a time
on four workers with a 1 s lease and a 0.2 s heartbeat; the worker of a random running
job is killed a random 0-0.6 s after it was seen running and a fresh worker is started,
until N kills have hit a running job. Then every job must have succeeded with
attempts = kills that hit it + 1, history 1..epochs exactly once, and final snapshot and
model version bit-identical to an uninterrupted run. Prints the detection time: kill ->
the job claimed by another worker. See bench/README.md, "## Crash resume".
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, make_url
from sqlalchemy.pool import NullPool

from service.db import make_engine, make_session_factory
from service.db.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
# The crash loop and its checks are the test suite's, so the bench runs exactly them.
sys.path.insert(0, str(ROOT))
from tests.jobs.test_faults import (  # noqa: E402
    WorkerProcesses,
    assert_clean_logs,
    assert_finished_like_uninterrupted,
    crash_workers_repeatedly,
    jobs_by_id,
)

POSTGRES_URL_ENV = "BACKPROP_TEST_POSTGRES_URL"


@contextmanager
def fresh_database(kind: str, directory: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, or a new PostgreSQL database, dropped after."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'crash.db'}"
        upgrade(url)
        yield url
        return
    server = os.environ.get(POSTGRES_URL_ENV)
    if not server:
        raise SystemExit(f"error: --database postgresql needs {POSTGRES_URL_ENV}")
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"backprop_crash_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def run(kind: str, kills: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as scratch, fresh_database(kind, Path(scratch)) as url:
        engine = make_engine(url)
        reader = make_engine(url, read_only=True)
        workers = WorkerProcesses(url, Path(scratch))
        try:
            session_factory = make_session_factory(engine)
            observer = make_session_factory(reader)
            started = time.monotonic()
            record = crash_workers_repeatedly(
                workers, session_factory, observer, kills, random.Random(seed)
            )
            took = time.monotonic() - started
            exit_codes = workers.stop()
            assert exit_codes == [0] * len(exit_codes), exit_codes
            assert_clean_logs(workers)

            jobs = jobs_by_id(observer, list(record.job_specs))
            attempts = {job_id: job.attempts for job_id, job in jobs.items()}
            assert attempts == {job_id: record.hits[job_id] + 1 for job_id in jobs}, attempts
            for job_id, spec in record.job_specs.items():
                assert_finished_like_uninterrupted(session_factory, job_id, spec)
        finally:
            workers.kill_all()
            engine.dispose()
            reader.dispose()

    detection = sorted(record.detection_seconds)
    hits = sum(record.hits.values())
    per_job = Counter(record.hits[job_id] for job_id in record.job_specs)
    print(f"## {kind}: {record.kills} kill -9s, {hits} hit a running job, {took:.0f} s")
    print(f"- jobs: {len(jobs)}, all succeeded; kills per job: {dict(sorted(per_job.items()))}")
    epochs = {spec["training"]["epochs"] for spec in record.job_specs.values()}
    print(f"- every job: attempts = hits + 1, history 1..{max(epochs)} once, identical weights")
    print(
        f"- kill -> re-claim ({len(detection)}): min {detection[0]:.2f} s, "
        f"median {statistics.median(detection):.2f} s, "
        f"p90 {detection[int(0.9 * (len(detection) - 1))]:.2f} s, max {detection[-1]:.2f} s"
    )
    print(f"- workers started: {len(workers.started)}; those left exited 0 on SIGTERM")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kills", type=int, default=100, help="kills that hit a running job")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgresql", "both"],
        default="both" if os.environ.get(POSTGRES_URL_ENV) else "sqlite",
        help=f"postgresql needs {POSTGRES_URL_ENV} (default: both when it is set)",
    )
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    for kind in kinds:
        run(kind, args.kills, args.seed)


if __name__ == "__main__":
    main()
