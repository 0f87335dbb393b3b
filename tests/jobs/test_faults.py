"""Faults with real `backprop worker` processes on a real database: kill -9 at random
moments, a claim race of 8 processes, a frozen worker whose lease was taken over,
PostgreSQL connections terminated mid-training, and a job that kills every worker.

Settings are short (lease 1 s, heartbeat 0.2 s) so that each fault is noticed quickly;
every process a test starts is killed at its end, a stopped one after a SIGCONT.
"""

import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, make_url, select, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from service.core import RunSpec
from service.core.datasets import generate
from service.db import (
    JobRow,
    JobStatus,
    ModelVersionRow,
    make_engine,
    make_session_factory,
    utc_now,
)
from service.db.jobs import TERMINAL, create_job
from service.db.leases import Lease
from service.jobs.worker import Worker
from tests.jobs.worker_helpers import (
    add_dataset,
    flat_bytes,
    history_epochs,
    queue_job,
    read_job,
    snapshots,
    uninterrupted_weights,
    wait_for,
    worker_settings,
)

REPOSITORY = Path(__file__).resolve().parents[2]
POSTGRES_URL_ENV = "BACKPROP_TEST_POSTGRES_URL"

# What every worker process of these tests runs with. The retry backoff is for a reaper
# that requeues stale jobs with a delay; kept tiny so that it never slows these tests.
FAULT_SETTINGS = {
    "BACKPROP_LEASE_TIMEOUT_SECONDS": "1",
    "BACKPROP_HEARTBEAT_SECONDS": "0.2",
    "BACKPROP_POLL_INTERVAL_SECONDS": "0.02",
    "BACKPROP_MAX_ATTEMPTS": "100",
    "BACKPROP_RETRY_BACKOFF_SECONDS": "0.05",
    # One BLAS thread per worker: the machine's cores are shared by several of them.
    "BACKPROP_WORKERS": "8",
    # The tests read the workers' log lines as JSON.
    "BACKPROP_LOG_FORMAT": "json",
}
MODEL_NAME = "moons"
# 100 noisy moons, per-sample SGD: about 1.5 ms an epoch, so a job trains for a second or
# more, with a checkpoint every 20 epochs (each written at the next flush, every 0.25 s).
MOONS = generate("moons", 100, noise=0.1)
CHECKPOINT_EVERY = 20


def moons_spec(epochs: int, seed: int) -> dict[str, Any]:
    return {
        "network": {
            "layers": [2, 8, 1],
            "hidden_activation": "tanh",
            "output_activation": "sigmoid",
        },
        "training": {
            "loss": "binary_crossentropy",
            "learning_rate": 0.05,
            "epochs": epochs,
            "batch_size": 1,
            "seed": seed,
            # The NumPy engine, whose jobs run long enough for kills and freezes to land
            # mid-run and for each reclaim to be seen running (the compiled engine ends
            # them in milliseconds).
            "engine": "numpy",
        },
    }


@cache
def _reference(spec_json: str) -> bytes:
    return flat_bytes(uninterrupted_weights(json.loads(spec_json), *MOONS))


def reference_weights(spec: dict[str, Any]) -> bytes:
    """Raw parameter bytes of `spec` trained on MOONS in one go in this process."""
    return _reference(json.dumps(spec, sort_keys=True))


def worker_pid(claimed_by: str | None) -> int | None:
    """The process id in a worker id (`host:pid:suffix`)."""
    return None if claimed_by is None else int(claimed_by.rsplit(":", 2)[1])


@dataclass
class WorkerProcess:
    popen: subprocess.Popen[bytes]
    stderr_path: Path
    started: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def events(self, event: str) -> list[dict[str, Any]]:
        """Its JSON log lines of `event`, in order (a last line cut short by a kill is left
        out: only lines that were ended are read)."""
        logged = self.stderr()
        ended = logged[: logged.rfind("\n") + 1].splitlines()
        return [line for line in map(json.loads, ended) if line["message"] == event]

    def ready(self) -> bool:
        """Whether it got past its start-up and looks for jobs."""
        if not self.started:
            self.started = bool(self.events("worker.started"))
        return self.started


class WorkerProcesses:
    """`backprop worker` processes on one database, each logging to files of its own."""

    def __init__(self, url: str, log_dir: Path, **settings: str) -> None:
        self.env = {**os.environ, **FAULT_SETTINGS, "BACKPROP_DATABASE_URL": url, **settings}
        self.log_dir = log_dir
        self.started: list[WorkerProcess] = []

    def start(self) -> WorkerProcess:
        name = self.log_dir / f"worker-{len(self.started)}"
        stderr_path = name.with_suffix(".err")
        with name.with_suffix(".out").open("wb") as out, stderr_path.open("wb") as err:
            popen = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "worker"],
                cwd=REPOSITORY,
                env=self.env,
                stdout=out,
                stderr=err,
            )
        worker = WorkerProcess(popen, stderr_path)
        self.started.append(worker)
        return worker

    def live(self) -> dict[int, WorkerProcess]:
        return {worker.pid: worker for worker in self.started if worker.alive()}

    def stop(self) -> list[int]:
        """SIGTERM to every live worker; their exit codes, which must come soon."""
        # Before its start-up ends a worker has no handler yet and SIGTERM kills it.
        wait_for(
            lambda: all(worker.ready() for worker in self.live().values()), 30, "workers to start"
        )
        live = list(self.live().values())
        for worker in live:
            worker.popen.send_signal(signal.SIGTERM)
        return [worker.popen.wait(timeout=15) for worker in live]

    def kill_all(self) -> None:
        for worker in self.started:
            if worker.alive():
                # A stopped process dies of SIGKILL too, but resuming it first is harmless
                # and leaves nothing frozen if the kill is ever refused.
                with suppress(ProcessLookupError):
                    worker.popen.send_signal(signal.SIGCONT)
                worker.popen.kill()
            worker.popen.wait()


@pytest.fixture
def workers(migrated_url: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    processes = WorkerProcesses(migrated_url, tmp_path)
    try:
        yield processes
    finally:
        processes.kill_all()


@pytest.fixture
def session_factory(db_engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield make_session_factory(db_engine)


@pytest.fixture
def observer(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions for polling: on SQLite they read a WAL snapshot without the write lock."""
    engine = make_engine(migrated_url, read_only=True)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def jobs_by_id(observer: sessionmaker[Session], job_ids: list[str]) -> dict[str, JobRow]:
    with observer.begin() as session:
        return {
            job.id: job for job in session.scalars(select(JobRow).where(JobRow.id.in_(job_ids)))
        }


def version_weights(session_factory: sessionmaker[Session], job_id: str) -> list[bytes]:
    """Weights of every model version registered by the job."""
    with session_factory.begin() as session:
        query = select(ModelVersionRow.weights).where(ModelVersionRow.job_id == job_id)
        return [flat_bytes(weights) for weights in session.scalars(query)]


def assert_finished_like_uninterrupted(
    session_factory: sessionmaker[Session], job_id: str, spec: dict[str, Any]
) -> None:
    """Succeeded with history 1..N, and the final snapshot and the one model version
    registered hold exactly the weights of an uninterrupted run."""
    job = read_job(session_factory, job_id)
    epochs = spec["training"]["epochs"]
    assert (job.status, job.error, job.epoch) == (JobStatus.SUCCEEDED, None, epochs)
    assert history_epochs(session_factory, job_id) == list(range(1, epochs + 1))
    final = snapshots(session_factory, job_id)[-1]
    assert final.epoch == epochs
    expected = reference_weights(spec)
    assert flat_bytes(final.weights) == expected
    assert version_weights(session_factory, job_id) == [expected]


def assert_clean_logs(workers: WorkerProcesses) -> None:
    for worker in workers.started:
        log = worker.stderr()
        assert "database is locked" not in log, log
        assert "Traceback" not in log, log


# kill -9 at random moments ----------------------------------------------------------


@dataclass
class CrashRecord:
    """What a series of kill -9s did, read back from the database."""

    kills: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    detection_seconds: list[float] = field(default_factory=list)
    job_specs: dict[str, dict[str, Any]] = field(default_factory=dict)


def crash_workers_repeatedly(
    workers: WorkerProcesses,
    session_factory: sessionmaker[Session],
    observer: sessionmaker[Session],
    target_hits: int,
    rng: random.Random,
    *,
    lanes: int = 2,
    spares: int = 2,
    epochs: int = 400,
    max_delay: float = 0.6,
    max_hits_per_job: int = 4,
) -> CrashRecord:
    """Keep `lanes` jobs training on `lanes + spares` workers and kill -9 the worker of a
    random running job at a random moment after its claim, starting a fresh worker each
    time, until `target_hits` kills hit a running job; then let every job finish.

    A kill waits for an idle, started worker for the job it strands, so the time until the
    job is claimed again (its detection time) is the lease expiry, not a process start.
    Each job is hit at most `max_hits_per_job` times, so that a retry backoff that grows
    with the attempts stays short, and the kills spread over several jobs.
    """
    record = CrashRecord()
    dataset_id = add_dataset(session_factory, *MOONS)
    waiting: dict[str, tuple[int, float]] = {}  # job id -> (killed worker's pid, kill time)

    def queue_next() -> None:
        spec = moons_spec(epochs, seed=len(record.job_specs) % 2)
        job_id = queue_job(session_factory, dataset_id, spec, MODEL_NAME, CHECKPOINT_EVERY)
        record.job_specs[job_id] = spec

    def poll(queue: bool = True) -> dict[str, JobRow]:
        """Read the jobs, note the re-claims of killed jobs and, with `queue`, keep `lanes`
        jobs unfinished."""
        jobs = jobs_by_id(observer, list(record.job_specs))
        now = time.monotonic()
        for job_id, (killed_pid, killed_at) in list(waiting.items()):
            job = jobs[job_id]
            claimer = worker_pid(job.claimed_by)
            if job.status == JobStatus.RUNNING and claimer not in (None, killed_pid):
                record.detection_seconds.append(now - killed_at)
                del waiting[job_id]
        unfinished = sum(
            job.status in (JobStatus.QUEUED, JobStatus.RUNNING) for job in jobs.values()
        )
        # Nothing new is queued while a stranded job waits for its lease to expire: the
        # idle worker kept for it would take the new job first, and the stranded one
        # would wait for a worker to free up or to start (seconds of warm-up on a busy
        # machine), which is not the detection time measured here.
        if queue and sum(record.hits.values()) < target_hits and not waiting:
            for _ in range(lanes - unfinished):
                queue_next()
        return jobs

    def victims() -> list[tuple[str, WorkerProcess]]:
        """Running jobs and their workers, once an idle worker is ready for one more."""
        live = workers.live()
        jobs = poll().values()
        running = {
            job.id: pid
            for job in jobs
            if job.status == JobStatus.RUNNING and (pid := worker_pid(job.claimed_by)) in live
        }
        queued = sum(job.status == JobStatus.QUEUED and job.id not in waiting for job in jobs)
        idle = [w for pid, w in live.items() if pid not in running.values() and w.ready()]
        # One idle worker for every job that is queued or waits to be reclaimed, and one
        # more for the job this kill strands.
        if len(idle) <= len(waiting) + queued:
            return []
        return [
            (job_id, live[pid])
            for job_id, pid in sorted(running.items())
            if job_id not in waiting and record.hits[job_id] < max_hits_per_job
        ]

    for _ in range(lanes + spares):
        workers.start()
    while sum(record.hits.values()) < target_hits:
        _, victim = rng.choice(wait_for(victims, 60, "a running job to kill"))
        kill_at = time.monotonic() + rng.uniform(0, max_delay)
        while time.monotonic() < kill_at:
            # Nothing queued until the kill either: the idle workers counted are for it.
            poll(queue=False)
            time.sleep(0.01)
        victim.popen.kill()
        victim.popen.wait()
        killed_at = time.monotonic()
        record.kills += 1
        workers.start()
        # The victim is dead: a job it still holds as running is one this kill hit.
        for job in poll().values():
            if job.status == JobStatus.RUNNING and worker_pid(job.claimed_by) == victim.pid:
                record.hits[job.id] += 1
                waiting[job.id] = (victim.pid, killed_at)

    def all_finished() -> bool:
        jobs = poll()
        return not waiting and all(job.status == JobStatus.SUCCEEDED for job in jobs.values())

    wait_for(all_finished, 60, "every job to succeed after the last kill")
    return record


def test_workers_killed_at_random_moments_20_times_every_job_ends_as_if_uninterrupted(
    workers: WorkerProcesses,
    session_factory: sessionmaker[Session],
    observer: sessionmaker[Session],
    record_property: Callable[[str, object], None],
) -> None:
    started = time.monotonic()
    record = crash_workers_repeatedly(workers, session_factory, observer, 20, random.Random(20))
    took = time.monotonic() - started
    assert workers.stop() == [0] * 4
    assert_clean_logs(workers)

    assert sum(record.hits.values()) == 20
    jobs = jobs_by_id(observer, list(record.job_specs))
    # Each kill that hit a running job cost exactly one attempt; nothing else did.
    assert {job_id: job.attempts for job_id, job in jobs.items()} == {
        job_id: record.hits[job_id] + 1 for job_id in jobs
    }
    for job_id, spec in record.job_specs.items():
        assert_finished_like_uninterrupted(session_factory, job_id, spec)
    detection = record.detection_seconds
    assert len(detection) == 20
    # In the JUnit report (`pytest --junitxml`), for whoever watches these times.
    record_property("kills", record.kills)
    record_property("seconds", round(took, 1))
    record_property("kill_to_reclaim_median_seconds", round(statistics.median(detection), 2))
    record_property("kill_to_reclaim_max_seconds", round(max(detection), 2))
    # The lease timeout (1 s) after the last heartbeat (at most 0.2 s before the kill),
    # plus a poll; room for a reaper's pass and backoff, and for a busy machine.
    assert max(detection) < 5


# the claim race -----------------------------------------------------------------------


def test_8_worker_processes_racing_for_400_jobs_claim_each_exactly_once(
    migrated_url: str,
    tmp_path: Path,
    session_factory: sessionmaker[Session],
    observer: sessionmaker[Session],
    record_property: Callable[[str, object], None],
) -> None:
    # A lease long enough that only the claim itself is tested: a claim stamped before a
    # long wait for the database is the next test's subject.
    workers = WorkerProcesses(migrated_url, tmp_path, BACKPROP_LEASE_TIMEOUT_SECONDS="10")
    try:
        took, jobs_per_worker = race_for_400_jobs(workers, session_factory, observer)
    finally:
        workers.kill_all()
    record_property("seconds", round(took, 1))
    record_property("jobs_per_worker", jobs_per_worker)


def race_for_400_jobs(
    workers: WorkerProcesses,
    session_factory: sessionmaker[Session],
    observer: sessionmaker[Session],
) -> tuple[float, list[int]]:
    """Race 8 workers for 400 one-epoch jobs; returns the seconds all took and how many
    each worker ran."""
    for _ in range(8):
        workers.start()
    wait_for(
        lambda: all(worker.ready() for worker in workers.started),
        60,
        "8 workers to start",
    )
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    spec = {
        "network": {"layers": [2, 2, 1], "hidden_activation": "tanh"},
        "training": {"epochs": 1, "seed": 0},
    }
    # All at once, so that the 8 idle workers race for every one of them.
    with session_factory.begin() as session:
        run_spec = RunSpec.from_dict(spec)
        job_ids = [create_job(session, dataset_id, run_spec, None, 1).id for _ in range(400)]

    def ended() -> int:
        with observer.begin() as session:
            statuses = session.scalars(
                select(JobRow.status).where(JobRow.status != JobStatus.QUEUED)
            )
            return sum(status != JobStatus.RUNNING for status in statuses)

    started = time.monotonic()
    wait_for(lambda: ended() == 400, 60, "400 jobs to end")
    took = time.monotonic() - started
    assert workers.stop() == [0] * 8
    assert_clean_logs(workers)

    claims = Counter(
        line["job_id"] for worker in workers.started for line in worker.events("job.claimed")
    )
    assert claims == Counter(dict.fromkeys(job_ids, 1))
    jobs = jobs_by_id(observer, job_ids)
    assert {(job.status, job.attempts, job.error) for job in jobs.values()} == {
        (JobStatus.SUCCEEDED, 1, None)
    }
    claimers = Counter(worker_pid(job.claimed_by) for job in jobs.values())
    assert set(claimers) <= {worker.pid for worker in workers.started}
    assert len(claimers) > 1
    return took, sorted(claimers.values())


# a claim stamped before a long wait for the database ----------------------------------


def test_a_claim_that_waited_longer_than_the_lease_for_the_database_is_not_stale(
    migrated_url: str, session_factory: sessionmaker[Session]
) -> None:
    spec = RunSpec.from_dict(moons_spec(epochs=300, seed=0))
    dataset_id = add_dataset(session_factory, *MOONS)
    # Heartbeats (and any periodic work tied to them) as far apart as the lease allows:
    # only the claim is timed.
    settings = worker_settings(migrated_url, lease_timeout_seconds=1.0, heartbeat_seconds=0.9)
    with Worker(settings) as first, Worker(settings) as second:
        assert first.claim() is None  # an idle poll: whatever a worker does first is done
        leases: list[Lease | None] = []
        claiming = threading.Thread(target=lambda: leases.append(first.claim()))
        # A slow transaction that queues the job (holding SQLite's write lock, or a lock on
        # PostgreSQL's jobs table) makes the polling worker wait longer than the lease.
        with session_factory.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE"))
            job_id = create_job(session, dataset_id, spec, None, CHECKPOINT_EVERY).id
            claiming.start()
            time.sleep(1.5)
            released = utc_now()
        claiming.join(timeout=30)
        assert leases and leases[0] is not None
        # Another worker must not take the job over at once as if its worker had died ...
        assert second.claim() is None
        job = read_job(session_factory, job_id)
        assert (job.status, job.attempts, job.claimed_by) == (
            JobStatus.RUNNING,
            1,
            first.worker_id,
        )
    # ... because the claim is stamped when it was made, not when the worker began to wait.
    assert job.heartbeat_at is not None
    assert job.heartbeat_at >= released - timedelta(seconds=0.5), (job.heartbeat_at, released)
    assert job.started_at is not None and job.started_at >= job.created_at


# a frozen worker whose lease was taken over -------------------------------------------


def in_a_transaction(url: str, worker: WorkerProcess) -> bool:
    """Whether the (stopped) worker is inside a transaction, holding locks others need."""
    if make_url(url).get_backend_name() == "sqlite":
        probe = sqlite3.connect(str(make_url(url).database), isolation_level=None, timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            probe.close()
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            busy = connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND state <> 'idle'"
                )
            )
            return bool(busy)
    finally:
        engine.dispose()


def freeze_between_transactions(url: str, worker: WorkerProcess) -> None:
    """SIGSTOP the worker at a moment it holds no lock: frozen inside a transaction it
    would block the database (SQLite) or the job's rows (PostgreSQL) for everyone."""
    for _ in range(100):
        worker.popen.send_signal(signal.SIGSTOP)
        if not in_a_transaction(url, worker):
            return
        worker.popen.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError("the worker was inside a transaction at each of 100 tries")


def test_a_worker_frozen_past_its_lease_writes_nothing_after_it_wakes(
    migrated_url: str,
    workers: WorkerProcesses,
    session_factory: sessionmaker[Session],
    observer: sessionmaker[Session],
) -> None:
    spec = moons_spec(epochs=1200, seed=1)
    job_id = queue_job(
        session_factory, add_dataset(session_factory, *MOONS), spec, MODEL_NAME, CHECKPOINT_EVERY
    )
    frozen = workers.start()
    wait_for(lambda: read_job(session_factory, job_id).epoch > 100, 30, "progress past epoch 100")
    freeze_between_transactions(migrated_url, frozen)
    try:
        frozen_at = read_job(session_factory, job_id)
        rescuer = workers.start()
        taken_over = wait_for(
            lambda: worker_pid(read_job(session_factory, job_id).claimed_by) == rescuer.pid,
            30,
            "another worker to take the job over",
        )
        assert taken_over
    finally:
        frozen.popen.send_signal(signal.SIGCONT)
    wait_for(lambda: frozen.events("job.lease_lost"), 10, "the woken worker to notice")
    wait_for(
        lambda: read_job(session_factory, job_id).status == JobStatus.SUCCEEDED,
        30,
        "the job to succeed",
    )
    # Time for any late write of the woken worker to land, if one could.
    time.sleep(0.5)
    assert workers.stop() == [0, 0]
    assert_clean_logs(workers)

    job = read_job(session_factory, job_id)
    assert frozen_at.attempts == 1
    assert (job.attempts, worker_pid(job.claimed_by)) == (2, rescuer.pid)
    assert_finished_like_uninterrupted(session_factory, job_id, spec)
    assert {line["job_id"] for line in frozen.events("job.lease_lost")} == {job_id}
    assert not frozen.events("job.succeeded") and not frozen.events("job.registered")


# a job that kills every worker that runs it -------------------------------------------


def test_a_job_killing_every_worker_fails_after_max_attempts_and_the_others_succeed(
    migrated_url: str,
    tmp_path: Path,
    session_factory: sessionmaker[Session],
    observer: sessionmaker[Session],
) -> None:
    dataset_id = add_dataset(session_factory, *MOONS)
    poison = queue_job(session_factory, dataset_id, moons_spec(epochs=50_000, seed=0))
    spec = moons_spec(epochs=200, seed=1)
    others = [queue_job(session_factory, dataset_id, spec, MODEL_NAME) for _ in range(4)]
    workers = WorkerProcesses(migrated_url, tmp_path, BACKPROP_MAX_ATTEMPTS="3")
    kills = 0
    try:
        workers.start()
        workers.start()

        def poison_ended() -> bool:
            nonlocal kills
            job = read_job(observer, poison)
            if job.status in (JobStatus.FAILED, JobStatus.SUCCEEDED, JobStatus.CANCELLED):
                return True
            live = workers.live()
            holder = live.get(worker_pid(job.claimed_by) or 0)
            if job.status == JobStatus.RUNNING and holder is not None:
                holder.popen.kill()
                holder.popen.wait()
                kills += 1
                workers.start()
            return False

        # Generous: a reaper may hold the job back with a backoff between attempts.
        wait_for(poison_ended, 60, "the poison job to end")
        wait_for(
            lambda: all(
                job.status == JobStatus.SUCCEEDED for job in jobs_by_id(observer, others).values()
            ),
            60,
            "the other jobs to succeed",
        )
        assert workers.stop() == [0, 0]
    finally:
        workers.kill_all()
    assert_clean_logs(workers)

    job = read_job(session_factory, poison)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and "max_attempts=3" in job.error
    assert (kills, job.attempts) == (3, 3)
    for job_id in others:
        assert read_job(session_factory, job_id).attempts == 1
        assert_finished_like_uninterrupted(session_factory, job_id, spec)


# PostgreSQL connections terminated mid-training ---------------------------------------


def terminate_other_connections(url: str) -> int:
    """pg_terminate_backend every other connection to the test's database; how many."""
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            return len(
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).all()
            )
    finally:
        engine.dispose()


# Collected only with a PostgreSQL server to test on (as in CI): SQLite has no server
# connections to terminate.
if os.environ.get(POSTGRES_URL_ENV):

    @pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
    def test_postgres_connections_terminated_while_a_job_trains_lose_nothing(
        migrated_url: str,
        workers: WorkerProcesses,
        session_factory: sessionmaker[Session],
        record_property: Callable[[str, object], None],
    ) -> None:
        spec = moons_spec(epochs=2000, seed=0)
        job_id = queue_job(
            session_factory,
            add_dataset(session_factory, *MOONS),
            spec,
            MODEL_NAME,
            CHECKPOINT_EVERY,
        )
        workers.start()
        wait_for(lambda: read_job(session_factory, job_id).epoch, 30, "the job to make progress")
        terminated = []
        for _ in range(5):
            terminated.append(terminate_other_connections(migrated_url))
            time.sleep(0.4)
        wait_for(
            lambda: read_job(session_factory, job_id).status in TERMINAL,
            60,
            "the job to end",
        )
        assert workers.stop() == [0]

        job = read_job(session_factory, job_id)
        record_property("terminated_connections", terminated)
        record_property("attempts", job.attempts)
        assert all(terminated)
        assert_finished_like_uninterrupted(session_factory, job_id, spec)
