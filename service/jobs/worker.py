"""The worker: claim a job, run it, repeat; stop cleanly on SIGTERM or SIGINT."""

import logging
import os
import random
import signal
import socket
import threading
import uuid
from types import FrameType, TracebackType

from sqlalchemy.exc import SQLAlchemyError
from threadpoolctl import threadpool_limits

from service.config import Settings
from service.db import make_engine, make_session_factory, utc_now
from service.db.migrate import is_at_head
from service.db.models import JobStatus
from service.jobs.lease import Lease, claim_next
from service.jobs.runner import JobRunner

log = logging.getLogger(__name__)


def default_worker_id() -> str:
    """Host, process id and a random suffix, so a restarted process gets a new name."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims and runs jobs from the database at `settings.database_url`, one at a time."""

    def __init__(self, settings: Settings, worker_id: str | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.engine = make_engine(settings.database_url)
        self.session_factory = make_session_factory(self.engine)

    def __enter__(self) -> "Worker":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connections."""
        self.engine.dispose()

    def claim(self) -> Lease | None:
        """Claim the next runnable job in a transaction of its own, if there is one."""
        settings = self.settings
        with self.session_factory.begin() as session:
            lease = claim_next(
                session,
                self.worker_id,
                utc_now(),
                settings.lease_timeout_seconds,
                settings.max_attempts,
            )
        if lease is not None:
            log.info(
                "job.claimed job_id=%s attempt=%d worker=%s",
                lease.job_id,
                lease.attempt,
                self.worker_id,
            )
        return lease

    def run_job(self, lease: Lease, stop: threading.Event) -> JobStatus | None:
        """Run one claimed job; see `JobRunner.run`."""
        return JobRunner(self.session_factory, lease, stop, self.settings.heartbeat_seconds).run()

    def run(self, stop: threading.Event, until_idle: bool = False) -> None:
        """Claim and run jobs until `stop` is set or, with `until_idle`, none is runnable."""
        while not stop.is_set():
            try:
                lease = self.claim()
            except SQLAlchemyError:
                if until_idle:
                    raise
                log.exception("worker.claim_failed worker=%s", self.worker_id)
                lease = None
            if lease is not None:
                self.run_job(lease, stop)
                continue
            if until_idle:
                return
            # Jitter keeps several idle workers from polling in lockstep.
            stop.wait(self.settings.poll_interval_seconds * random.uniform(0.5, 1.5))


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

    # Configured after the schema check, which would log Alembic's chatter at INFO.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("worker.stopping signal=%s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    # Several worker processes share the cores: BLAS threads beyond their share only
    # oversubscribe them (see the performance notes).
    blas_threads = max(1, (os.cpu_count() or 1) // max(1, settings.workers))
    with threadpool_limits(limits=blas_threads), Worker(settings) as worker:
        log.info("worker.started worker=%s blas_threads=%d", worker.worker_id, blas_threads)
        worker.run(stop)
        log.info("worker.stopped worker=%s", worker.worker_id)
