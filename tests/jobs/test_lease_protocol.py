"""The lease protocol: claim, heartbeat, hand back, finish, reap and cancel, on the real
database functions. A state machine explores their interleavings on SQLite against a
model; smaller tests check the database clock, the reaper and concurrent reapers on both
databases."""

import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.core import RunSpec
from service.core.datasets import generate
from service.db import DatasetRow, JobRow, JobStatus, make_engine, make_session_factory
from service.db import clock as clock_module
from service.db.datasets import create_dataset
from service.db.jobs import TERMINAL, cancel_job, create_job
from service.db.leases import (
    MAX_BACKOFF_SECONDS,
    Lease,
    LeaseLost,
    Reaped,
    claim_next,
    finish,
    hand_back,
    reap,
    touch,
)
from service.db.migrate import upgrade
from service.errors import Conflict
from tests.jobs.worker_helpers import add_dataset, queue_job, read_job, spec_with, wait_for

LEASE_TIMEOUT = 10.0
MAX_ATTEMPTS = 2
BACKOFF = 1.0
# Time passing between two steps: within a lease, past it, past any backoff.
PAUSES = st.sampled_from(
    [0.0, 0.5, LEASE_TIMEOUT / 2, LEASE_TIMEOUT + 0.5, 2 * MAX_BACKOFF_SECONDS]
)
WORKERS = ("worker-a", "worker-b", "worker-c")
SPEC = RunSpec.from_dict(spec_with(epochs=10))


@dataclass
class ModelJob:
    """What the protocol says a job's lease columns must be."""

    created: tuple[datetime, str]
    status: JobStatus = JobStatus.QUEUED
    token: str | None = None
    attempts: int = 0
    heartbeat_at: datetime | None = None
    run_after: datetime | None = None
    cancel_requested: bool = False


class LeaseProtocol(RuleBasedStateMachine):
    """Several workers claim, beat, hand back and finish jobs while time passes and
    reapers and cancels interfere; the database must agree with the model after each step."""

    jobs = Bundle("jobs")
    leases = Bundle("leases")

    def __init__(self, template: Path, directory: Path) -> None:
        super().__init__()
        path = directory / f"{uuid.uuid4().hex}.db"
        shutil.copyfile(template, path)
        self.engine = make_engine(f"sqlite:///{path}")
        self.session_factory = make_session_factory(self.engine)
        with self.session_factory.begin() as session:
            self.dataset_id = session.scalars(select(DatasetRow.id)).one()
        self.now = datetime(2030, 1, 1, tzinfo=UTC)
        self.model: dict[str, ModelJob] = {}
        self.granted: list[Lease] = []
        self.seen_terminal: dict[str, JobStatus] = {}

    def teardown(self) -> None:
        self.engine.dispose()

    def _valid(self, lease: Lease) -> bool:
        job = self.model[lease.job_id]
        return job.status == JobStatus.RUNNING and job.token == lease.token

    def _create(self) -> str:
        with self.session_factory.begin() as session:
            job = create_job(session, self.dataset_id, SPEC, None, 5)
        self.model[job.id] = ModelJob(created=(job.created_at, job.id))
        return job.id

    def _some(self, status: JobStatus) -> bool:
        return any(job.status == status for job in self.model.values())

    @initialize(target=jobs)
    def create_first_jobs(self) -> Any:
        return multiple(self._create(), self._create())

    @rule(target=jobs)
    def create(self) -> str:
        return self._create()

    @precondition(lambda self: self._some(JobStatus.QUEUED))
    @rule(target=leases, worker=st.sampled_from(WORKERS))
    def claim(self, worker: str) -> Any:
        with self.session_factory.begin() as session:
            lease = claim_next(session, worker, self.now)
        due = sorted(
            (job.created, job_id)
            for job_id, job in self.model.items()
            if job.status == JobStatus.QUEUED
            and (job.run_after is None or job.run_after <= self.now)
        )
        if not due:
            assert lease is None
            return multiple()
        expected = due[0][1]
        assert lease is not None and lease.job_id == expected
        job = self.model[expected]
        job.status, job.token, job.attempts = JobStatus.RUNNING, lease.token, job.attempts + 1
        job.heartbeat_at, job.run_after = self.now, None
        assert lease.attempt == job.attempts
        self.granted.append(lease)
        return lease

    @precondition(lambda self: self._some(JobStatus.RUNNING))
    @rule(lease=leases)
    def heartbeat(self, lease: Lease) -> None:
        valid = self._valid(lease)
        try:
            with self.session_factory.begin() as session:
                cancel_asked = touch(session, lease, self.now)
        except LeaseLost:
            assert not valid, "the current lease holder's heartbeat was refused"
            return
        assert valid, "a stale lease could still heartbeat"
        job = self.model[lease.job_id]
        assert cancel_asked == job.cancel_requested
        job.heartbeat_at = self.now

    @rule(seconds=PAUSES)
    def time_passes(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @precondition(lambda self: self._some(JobStatus.RUNNING))
    @rule(seconds=PAUSES)
    def reap_after(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        with self.session_factory.begin() as session:
            reaped = reap(session, LEASE_TIMEOUT, MAX_ATTEMPTS, BACKOFF, self.now)
        cutoff = self.now - timedelta(seconds=LEASE_TIMEOUT)
        expected: dict[str, list[str]] = {"requeued": [], "failed": [], "cancelled": []}
        for job_id, job in self.model.items():
            if job.status != JobStatus.RUNNING or job.heartbeat_at is None:
                continue
            if job.heartbeat_at >= cutoff:
                continue
            job.token = None
            if job.cancel_requested:
                job.status = JobStatus.CANCELLED
                expected["cancelled"].append(job_id)
            elif job.attempts >= MAX_ATTEMPTS:
                job.status = JobStatus.FAILED
                expected["failed"].append(job_id)
            else:
                job.status, job.heartbeat_at = JobStatus.QUEUED, None
                delay = min(MAX_BACKOFF_SECONDS, BACKOFF * 2**job.attempts)
                job.run_after = self.now + timedelta(seconds=delay)
                expected["requeued"].append(job_id)
        assert {name: sorted(ids) for name, ids in vars(reaped).items()} == {
            name: sorted(ids) for name, ids in expected.items()
        }

    @precondition(lambda self: self._some(JobStatus.QUEUED) or self._some(JobStatus.RUNNING))
    @rule(job_id=jobs)
    def cancel(self, job_id: str) -> None:
        job = self.model[job_id]
        try:
            with self.session_factory.begin() as session:
                cancel_job(session, job_id)
        except Conflict:
            assert job.status in TERMINAL
            return
        assert job.status not in TERMINAL
        if job.status == JobStatus.QUEUED:
            job.status, job.token = JobStatus.CANCELLED, None
        else:
            job.cancel_requested = True

    @precondition(lambda self: self._some(JobStatus.RUNNING))
    @rule(lease=leases, status=st.sampled_from([JobStatus.SUCCEEDED, JobStatus.FAILED]))
    def finish_job(self, lease: Lease, status: JobStatus) -> None:
        valid = self._valid(lease)
        try:
            with self.session_factory.begin() as session:
                finish(session, lease, status, self.now)
        except LeaseLost:
            assert not valid
            return
        assert valid
        job = self.model[lease.job_id]
        job.status, job.token = status, None

    @precondition(lambda self: self._some(JobStatus.RUNNING))
    @rule(lease=leases)
    def hand_job_back(self, lease: Lease) -> None:
        valid = self._valid(lease)
        try:
            with self.session_factory.begin() as session:
                status = hand_back(session, lease, self.now)
        except LeaseLost:
            assert not valid
            return
        assert valid
        job = self.model[lease.job_id]
        job.token = None
        if job.cancel_requested:
            job.status = JobStatus.CANCELLED
        else:
            job.status, job.attempts, job.heartbeat_at = JobStatus.QUEUED, job.attempts - 1, None
        assert status == job.status

    @invariant()
    def database_agrees_with_the_protocol(self) -> None:
        with self.session_factory.begin() as session:
            rows = {job.id: job for job in session.scalars(select(JobRow))}
        assert rows.keys() == self.model.keys()
        for job_id, row in rows.items():
            job = self.model[job_id]
            assert (row.status, row.lease_token, row.attempts, row.cancel_requested) == (
                job.status,
                job.token,
                job.attempts,
                job.cancel_requested,
            )
            if row.status == JobStatus.QUEUED:
                assert row.run_after == job.run_after
            if row.status == JobStatus.RUNNING:
                assert row.heartbeat_at == job.heartbeat_at

    @invariant()
    def running_jobs_have_exactly_one_valid_lease_and_others_none(self) -> None:
        with self.session_factory.begin() as session:
            rows = list(session.execute(select(JobRow.id, JobRow.status, JobRow.lease_token)))
        for job_id, status, token in rows:
            holders = [lease for lease in self.granted if lease.job_id == job_id]
            valid = [lease for lease in holders if lease.token == token]
            assert len(valid) == (1 if status == JobStatus.RUNNING else 0)
            assert (token is not None) == (status == JobStatus.RUNNING)

    @invariant()
    def terminal_states_never_change_and_attempts_stay_bounded(self) -> None:
        with self.session_factory.begin() as session:
            rows = list(session.execute(select(JobRow.id, JobRow.status, JobRow.attempts)))
        for job_id, status, attempts in rows:
            assert attempts <= MAX_ATTEMPTS
            if job_id in self.seen_terminal:
                assert status == self.seen_terminal[job_id]
            elif status in TERMINAL:
                self.seen_terminal[job_id] = status


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file with one dataset, copied for each state machine run."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        create_dataset(session, "xor", *generate("xor", 4), {"kind": "xor"})
    engine.dispose()
    return path


def test_lease_protocol_holds_under_any_interleaving(template: Path, tmp_path: Path) -> None:
    run_state_machine_as_test(  # type: ignore[no-untyped-call]  # hypothesis leaves it untyped
        lambda: LeaseProtocol(template, tmp_path),
        settings=settings(max_examples=100, stateful_step_count=40, deadline=None, database=None),
    )


@pytest.fixture
def session_factory(db_engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield make_session_factory(db_engine)


def queued_jobs(session_factory: sessionmaker[Session], count: int) -> list[str]:
    dataset_id = add_dataset(session_factory, *generate("xor", 4))
    return [queue_job(session_factory, dataset_id, spec_with(epochs=10)) for _ in range(count)]


def claim(session_factory: sessionmaker[Session], worker_id: str = "worker") -> Lease | None:
    with session_factory.begin() as session:
        return claim_next(session, worker_id)


def age_heartbeat(session_factory: sessionmaker[Session], job_id: str, seconds: float) -> None:
    """Move the job's last heartbeat `seconds` back, as if its worker had died then."""
    with session_factory.begin() as session:
        job = session.get_one(JobRow, job_id)
        assert job.heartbeat_at is not None
        job.heartbeat_at -= timedelta(seconds=seconds)


def database_time(session_factory: sessionmaker[Session]) -> datetime:
    with session_factory.begin() as session:
        return clock_module.database_now(session)


def wait_until(session_factory: sessionmaker[Session], moment: datetime) -> None:
    wait_for(lambda: database_time(session_factory) >= moment, 5, f"the database's {moment}")


def test_leases_are_timed_by_the_database_clock_not_the_workers(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    # This process's clock runs a day ahead. PostgreSQL's own clock times the leases, so
    # they look fresh; SQLite is a file on this machine, so this clock is its clock.
    skewed = datetime.now(UTC) + timedelta(days=1)
    monkeypatch.setattr(clock_module, "utc_now", lambda: skewed)
    (job_id,) = queued_jobs(session_factory, 1)
    with session_factory.begin() as session:
        on_postgresql = session.get_bind().dialect.name == "postgresql"
        server_now = session.scalar(select(func.now())) if on_postgresql else skewed
    assert server_now is not None

    lease = claim(session_factory)
    assert lease is not None
    job = read_job(session_factory, job_id)
    assert job.heartbeat_at is not None and job.started_at is not None
    assert abs(job.heartbeat_at - server_now) < timedelta(seconds=1)
    assert abs(job.started_at - server_now) < timedelta(seconds=1)

    with session_factory.begin() as session:
        assert reap(session, LEASE_TIMEOUT, MAX_ATTEMPTS, BACKOFF) == Reaped([], [], [])
    age_heartbeat(session_factory, job_id, LEASE_TIMEOUT + 1)
    with session_factory.begin() as session:
        reaped = reap(session, LEASE_TIMEOUT, MAX_ATTEMPTS, BACKOFF)
    assert reaped.requeued == [job_id]
    run_after = read_job(session_factory, job_id).run_after
    assert run_after is not None
    # One attempt used: back off 2 s from the database's now.
    assert abs(run_after - (server_now + timedelta(seconds=2))) < timedelta(seconds=1)


def test_stale_job_is_requeued_after_a_growing_backoff_then_fails_at_max_attempts(
    session_factory: sessionmaker[Session],
) -> None:
    (job_id,) = queued_jobs(session_factory, 1)
    backoff = 0.25

    def crash_and_reap() -> Reaped:
        age_heartbeat(session_factory, job_id, LEASE_TIMEOUT + 1)
        with session_factory.begin() as session:
            return reap(session, LEASE_TIMEOUT, 3, backoff)

    for attempt, delay in ((1, 0.5), (2, 1.0)):
        lease = claim(session_factory)
        assert lease is not None and lease.attempt == attempt
        assert crash_and_reap().requeued == [job_id]
        reaped_at = database_time(session_factory)
        job = read_job(session_factory, job_id)
        assert (job.status, job.attempts, job.lease_token, job.heartbeat_at) == (
            JobStatus.QUEUED,
            attempt,
            None,
            None,
        )
        assert job.run_after is not None
        # min(60, backoff * 2**attempts) after the reap.
        waits = (job.run_after - reaped_at).total_seconds()
        assert delay - 0.3 < waits <= delay
        assert claim(session_factory) is None, "claimed before its backoff ended"
        wait_until(session_factory, job.run_after)

    lease = claim(session_factory)
    assert lease is not None and lease.attempt == 3
    assert crash_and_reap().failed == [job_id]
    job = read_job(session_factory, job_id)
    assert (job.status, job.attempts, job.lease_token) == (JobStatus.FAILED, 3, None)
    assert job.error is not None and "max_attempts=3" in job.error
    assert job.finished_at is not None
    # A failed job stays failed, whatever is asked of it later.
    with session_factory.begin() as session:
        session.execute(update(JobRow).where(JobRow.id == job_id).values(cancel_requested=True))
    age_heartbeat(session_factory, job_id, LEASE_TIMEOUT + 1)
    with session_factory.begin() as session:
        assert reap(session, LEASE_TIMEOUT, 3, backoff) == Reaped([], [], [])
    with pytest.raises(Conflict), session_factory.begin() as session:
        cancel_job(session, job_id)
    assert read_job(session_factory, job_id).status == JobStatus.FAILED


def test_concurrent_reapers_move_each_stale_job_exactly_once(
    session_factory: sessionmaker[Session],
) -> None:
    job_ids = queued_jobs(session_factory, 12)
    leases = [claim(session_factory) for _ in job_ids]
    assert all(leases)
    exhausted = set(job_ids[::3])
    with session_factory.begin() as session:
        session.execute(
            update(JobRow).where(JobRow.id.in_(exhausted)).values(attempts=MAX_ATTEMPTS)
        )
    for job_id in job_ids:
        age_heartbeat(session_factory, job_id, LEASE_TIMEOUT + 1)

    reapers = 4
    start = threading.Barrier(reapers)
    results: list[Reaped] = []

    def reap_once() -> None:
        start.wait()
        with session_factory.begin() as session:
            results.append(reap(session, LEASE_TIMEOUT, MAX_ATTEMPTS, BACKOFF))

    threads = [threading.Thread(target=reap_once) for _ in range(reapers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == reapers

    requeued = [job_id for result in results for job_id in result.requeued]
    failed = [job_id for result in results for job_id in result.failed]
    assert sorted(requeued) == sorted(set(job_ids) - exhausted)
    assert sorted(failed) == sorted(exhausted)
    for job_id in job_ids:
        job = read_job(session_factory, job_id)
        expected = (
            (JobStatus.FAILED, MAX_ATTEMPTS) if job_id in exhausted else (JobStatus.QUEUED, 1)
        )
        assert (job.status, job.attempts, job.lease_token) == (*expected, None)
