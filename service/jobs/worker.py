"""The worker: reap, claim a job, run it, repeat; stop cleanly on SIGTERM or SIGINT."""

import functools
import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType, TracebackType

import psycopg
from sqlalchemy import event, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from threadpoolctl import threadpool_limits

from service.config import Settings
from service.core.compiled import warm_up
from service.db import make_engine, make_session_factory
from service.db.failures import reason
from service.db.jobs import JOBS_CHANNEL
from service.db.leases import Lease, Reaped, claim_next, reap
from service.db.migrate import is_at_head
from service.db.models import JobStatus
from service.db.wakeups import WakePipe
from service.db.workers import beat_worker, deregister_worker, reap_workers, register_worker
from service.jobs.outage import DatabaseOutage, retry_delay
from service.jobs.runner import JobRunner
from service.logs import configure_logging, log_context, log_event

log = logging.getLogger(__name__)

# A worker whose job did not reach a checkpoint within the shutdown grace period exits
# with this status, without writing (see `ShutdownGrace`).
EXIT_GRACE_EXPIRED = 3
# An idle worker waiting for NOTIFY still looks at its stop event this often.
STOP_CHECK_SECONDS = 0.25
# After the LISTEN connection failed, the next try waits this long (polling goes on).
LISTEN_RETRY_SECONDS = 5.0
LISTEN_CONNECT_TIMEOUT_SECONDS = 5
# A worker row whose heartbeat is this many lease timeouts old belongs to a dead worker
# (killed, or its machine lost) and is deleted by a reap. Generous, because a live worker
# whose row was deleted only re-registers at its next heartbeat.
STALE_WORKER_LEASE_TIMEOUTS = 10
# After a claim failed on the database (a full disk, a lock), the next waits twice as
# long each time, up to this: a database that takes no writes is not asked every poll,
# nor logged about every poll.
CLAIM_RETRY_MAX_SECONDS = 5.0


def default_worker_id() -> str:
    """Host, process id and a random suffix, so a restarted process gets a new name."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobNotifications:
    """LISTENs on PostgreSQL for queued jobs, so an idle worker wakes as soon as one is.

    A dedicated autocommit connection outside SQLAlchemy's pool: LISTEN lasts as long as
    its session. A lost connection only means waiting out the poll interval again, and is
    reopened on a later idle wait; while `outage` says the database is unavailable, failing
    to reopen it is not logged again.
    """

    def __init__(self, database_url: str, outage: DatabaseOutage | None = None) -> None:
        self.url = make_url(database_url).set(drivername="postgresql")
        self.connection: psycopg.Connection[tuple[object, ...]] | None = None
        self.retry_at = 0.0
        self.outage = outage

    def wait(self, timeout: float, stop: threading.Event) -> None:
        """Return once a job is announced, `stop` is set, or `timeout` seconds passed."""
        deadline = time.monotonic() + timeout
        connection = self.connection or self._connect()
        try:
            while connection is not None and not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                # In slices, because a signal does not interrupt the wait for the socket.
                for _ in connection.notifies(timeout=min(left, STOP_CHECK_SECONDS), stop_after=1):
                    return
        except psycopg.Error as error:
            # Polling goes on until the connection is back.
            log_event(log, "worker.listen_lost", level=logging.WARNING, error=str(error))
            self.close()
        stop.wait(max(0.0, deadline - time.monotonic()))

    def _connect(self) -> psycopg.Connection[tuple[object, ...]] | None:
        if time.monotonic() < self.retry_at:
            return None
        connection = None
        try:
            connection = psycopg.connect(
                self.url.render_as_string(hide_password=False),
                autocommit=True,
                connect_timeout=LISTEN_CONNECT_TIMEOUT_SECONDS,
            )
            connection.execute(f"LISTEN {JOBS_CHANNEL}")
        except psycopg.Error as error:
            if self.outage is None or not self.outage.ongoing:
                log_event(log, "worker.listen_failed", level=logging.WARNING, error=str(error))
            if connection is not None:
                connection.close()
            self.retry_at = time.monotonic() + LISTEN_RETRY_SECONDS
            return None
        # Visible only once it listens: a job queued from here on wakes this worker.
        self.connection = connection
        return connection

    def close(self) -> None:
        """Close the LISTEN connection, if open."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class Worker:
    """Claims and runs jobs from the database at `settings.database_url`, one at a time.

    Every worker also reaps: at most every `heartbeat_seconds`, before claiming and while
    running a job, it re-queues (or fails, or cancels) jobs whose lease expired.

    As a context manager it has a row in the workers table from enter to exit, whose
    heartbeat (and current job) it refreshes every `heartbeat_seconds`, idle or busy, so
    the metrics see idle workers too. Writing that row is best effort: a failure is
    logged, and never stops a job.

    While the database is unavailable (a restart) the worker keeps running: it logs that
    once (`outage`), retries with backoff, and logs once more when the database is back.
    """

    def __init__(self, settings: Settings, worker_id: str | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.outage = DatabaseOutage(self.worker_id)
        # A statement waiting for a lock held elsewhere (PostgreSQL) fails once its job
        # may count as stalled, and the write is retried or the job given up with the
        # reason logged, instead of waiting silently forever (SQLite's busy timeout
        # bounds its waits the same way). Not the lease: a claim may outwait that.
        self.engine = make_engine(
            settings.database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            lock_timeout_seconds=settings.stall_seconds,
        )
        self.session_factory = make_session_factory(self.engine)
        # Idle workers wait for a queued job's announcement, polling as a fallback.
        self.notifications: JobNotifications | WakePipe | None = (
            JobNotifications(settings.database_url, self.outage)
            if self.engine.dialect.name == "postgresql"
            else self._wake_pipe()
        )
        self.next_reap = 0.0
        self.next_beat = 0.0

    def _wake_pipe(self) -> WakePipe | None:
        try:
            return WakePipe.open(self.engine.url)
        except OSError as error:
            log_event(log, "worker.wake_pipe_failed", level=logging.WARNING, error=str(error))
            return None

    def __enter__(self) -> "Worker":
        self._write_row("register", lambda session: register_worker(session, self.worker_id))
        self.next_beat = time.monotonic() + self.settings.heartbeat_seconds
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Delete this worker's row and close the database connections."""
        self._write_row("deregister", lambda session: deregister_worker(session, self.worker_id))
        if self.notifications is not None:
            self.notifications.close()
        self.engine.dispose()

    def reap(self, session: Session) -> Reaped:
        """End expired leases (see `leases.reap`) and log each job that moved."""
        settings = self.settings
        reaped = reap(
            session,
            settings.lease_timeout_seconds,
            settings.max_attempts,
            settings.retry_backoff_seconds,
        )
        stale_workers: list[str] = []
        # Logged once the transaction commits: a reap whose commit fails moved nothing.
        event.listen(
            session, "after_commit", lambda _: self._log_reaped(reaped, stale_workers), once=True
        )
        # In a savepoint: failing to tidy the workers table must not undo the jobs' reap.
        try:
            with session.begin_nested():
                stale_workers = reap_workers(
                    session, STALE_WORKER_LEASE_TIMEOUTS * settings.lease_timeout_seconds
                )
        except SQLAlchemyError:
            log_event(
                log,
                "worker.reap_workers_failed",
                level=logging.ERROR,
                exc_info=True,
                worker=self.worker_id,
            )
        self.next_reap = time.monotonic() + settings.heartbeat_seconds
        return reaped

    def _log_reaped(self, reaped: Reaped, stale_workers: list[str]) -> None:
        for worker_id in stale_workers:
            log_event(
                log,
                "worker.reaped",
                level=logging.WARNING,
                stale_worker=worker_id,
                worker=self.worker_id,
            )
        for outcome, job_ids in vars(reaped).items():
            for job_id in job_ids:
                # The fields name the reaped job, not the one this worker may be running.
                log_event(
                    log,
                    "job.reaped",
                    level=logging.WARNING,
                    job_id=job_id,
                    attempt=None,
                    outcome=outcome,
                    worker=self.worker_id,
                )

    def beat(self, job_id: str | None) -> None:
        """Refresh this worker's row: heartbeat now, running `job_id` (None: idle).

        A row that is gone (a reap took this worker for dead, or registering failed) is
        written anew.
        """
        self.next_beat = time.monotonic() + self.settings.heartbeat_seconds

        def write(session: Session) -> None:
            if not beat_worker(session, self.worker_id, job_id):
                register_worker(session, self.worker_id, job_id)

        self._write_row("heartbeat", write)

    def _write_row(self, action: str, write: Callable[[Session], None]) -> None:
        try:
            with self.session_factory.begin() as session:
                write(session)
        except SQLAlchemyError as error:
            if self.outage.failed(error, action):
                return  # best effort: rewritten at the next heartbeat (or reaped)
            # The database's own errors (a full disk, a lock, a lost connection) are one
            # line with their reason, not a traceback every heartbeat.
            log_event(
                log,
                f"worker.{action}_failed",
                level=logging.ERROR,
                exc_info=not isinstance(error, OperationalError),
                worker=self.worker_id,
                reason=reason(error),
            )
        else:
            self.outage.succeeded()

    def claim(self) -> Lease | None:
        """Reap if it is time, then claim the next due job, in one transaction."""
        with self.session_factory.begin() as session:
            if time.monotonic() >= self.next_reap:
                self.reap(session)
            lease = claim_next(session, self.worker_id)
        self.outage.succeeded()
        if lease is not None:
            log_event(
                log,
                "job.claimed",
                job_id=lease.job_id,
                attempt=lease.attempt,
                worker=self.worker_id,
            )
            self.beat(lease.job_id)
        return lease

    def run_job(self, lease: Lease, stop: threading.Event) -> JobStatus | None:
        """Run one claimed job; see `JobRunner.run`. Every line it logs carries the job id."""
        runner = JobRunner(
            self.session_factory,
            lease,
            stop,
            self.settings.heartbeat_seconds,
            time_limit_seconds=self.settings.job_time_limit_seconds,
            reap=self.reap,
            beat_worker=functools.partial(self.beat, lease.job_id),
            outage=self.outage,
            stall_seconds=self.settings.stall_seconds,
            max_attempts=self.settings.max_attempts,
            retry_backoff_seconds=self.settings.retry_backoff_seconds,
        )
        with log_context(job_id=lease.job_id, attempt=lease.attempt, worker=self.worker_id):
            try:
                return runner.run()
            finally:
                self.beat(None)

    def run(self, stop: threading.Event, until_idle: bool = False) -> None:
        """Claim and run jobs until `stop` is set or, with `until_idle`, none is runnable."""
        with log_context(worker=self.worker_id):
            self._run(stop, until_idle)

    def _run(self, stop: threading.Event, until_idle: bool) -> None:
        unavailable_tries = 0
        failed_claims = 0
        while not stop.is_set():
            try:
                lease = self.claim()
                failed_claims = 0
            except SQLAlchemyError as error:
                if until_idle:
                    raise
                if self.outage.failed(error, "claim"):
                    unavailable_tries += 1
                    stop.wait(retry_delay(unavailable_tries))
                    continue
                log_event(
                    log,
                    "worker.claim_failed",
                    level=logging.ERROR,
                    exc_info=not isinstance(error, OperationalError),
                    worker=self.worker_id,
                    reason=reason(error),
                )
                failed_claims += 1
                lease = None
            else:
                unavailable_tries = 0
            if lease is not None:
                self.run_job(lease, stop)
                continue
            if until_idle:
                return
            if time.monotonic() >= self.next_beat:
                self.beat(None)
            # Jitter keeps several idle workers from polling in lockstep.
            interval = self.settings.poll_interval_seconds * random.uniform(0.5, 1.5)
            if failed_claims:
                backoff = self.settings.poll_interval_seconds * 2**failed_claims
                interval = max(interval, min(backoff, CLAIM_RETRY_MAX_SECONDS))
            if self.notifications is not None:
                self.notifications.wait(interval, stop)
            else:
                stop.wait(interval)


class ShutdownGrace:
    """On SIGTERM or SIGINT set `stop`; exit the process if it still runs `grace_seconds` on.

    Stopping checkpoints the running job after its current epoch and hands it back. An
    epoch can outlast the grace period (and the supervisor's patience), so then the
    process exits at once without writing: its lease expires, a worker's reap queues the
    job again and it resumes from its last checkpoint. The trade-off: the epochs since that
    checkpoint are trained again and the run uses up an attempt, as after a crash; waiting
    for the epoch instead would get the process killed midway, at the same cost.

    The signal reaches a watching thread through the wakeup fd, not only through the
    Python-level handler, which runs only when the main thread returns to the interpreter:
    one long NumPy call could delay that past the deadline.
    """

    def __init__(self, stop: threading.Event, grace_seconds: float) -> None:
        self.stop = stop
        self.grace_seconds = grace_seconds
        # Both ends live as long as this object, which the watching thread keeps alive.
        self.reader, self.writer = socket.socketpair()
        self.writer.setblocking(False)

    def install(self) -> None:
        """Handle the signals from now on (in the main thread)."""
        signal.set_wakeup_fd(self.writer.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        threading.Thread(target=self._watch, name="shutdown-grace", daemon=True).start()

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()

    def _watch(self) -> None:
        signum = self.reader.recv(1)[0]
        log_event(
            log,
            "worker.stopping",
            signal=signal.Signals(signum).name,
            grace_seconds=self.grace_seconds,
        )
        self.stop.set()
        time.sleep(self.grace_seconds)
        # Exits without writing: the job resumes from its last checkpoint once its lease
        # expires.
        log_event(
            log,
            "worker.grace_expired",
            level=logging.WARNING,
            grace_seconds=self.grace_seconds,
            exit_code=EXIT_GRACE_EXPIRED,
        )
        os._exit(EXIT_GRACE_EXPIRED)


def run_worker(settings: Settings) -> None:
    """Entry point of `backprop worker`: run jobs until SIGTERM or SIGINT, then exit."""
    try:
        at_head = is_at_head(settings.database_url)
    except SQLAlchemyError as error:
        raise SystemExit(f"error: cannot read the database schema: {error}") from None
    if not at_head:
        raise SystemExit(
            "error: the database schema is not at the newest revision; "
            "run `backprop db upgrade` first"
        )

    configure_logging(settings.log_level, settings.log_format)
    stop = threading.Event()
    ShutdownGrace(stop, settings.shutdown_grace_seconds).install()

    # Several worker processes share the cores: BLAS threads beyond their share only
    # oversubscribe them (see the performance notes).
    blas_threads = max(1, (os.cpu_count() or 1) // max(1, settings.workers))
    # The compiled engine's kernels load before the worker counts as started (from numba's
    # cache; compiled there on a first start), not in the first job that trains with them.
    warming = time.monotonic()
    compiled_ready = warm_up()
    warm_up_seconds = round(time.monotonic() - warming, 3)
    with threadpool_limits(limits=blas_threads), Worker(settings) as worker:
        log_event(log, "worker.started", worker=worker.worker_id, blas_threads=blas_threads)
        log_event(
            log,
            "worker.compiled_engine",
            ready=compiled_ready,
            seconds=warm_up_seconds,
            worker=worker.worker_id,
        )
        worker.run(stop)
        log_event(log, "worker.stopped", worker=worker.worker_id)
