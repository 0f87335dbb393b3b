"""Run one claimed job: train it, write history and snapshots under the lease, finish it."""

import contextvars
import logging
import math
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.core import EpochRecord, Model, RunSpec, SpecError, Trainer
from service.core.labels import Labels
from service.db.failures import is_storage_full, is_unavailable, reason
from service.db.jobs import epoch_metrics
from service.db.leases import Lease, LeaseLost, finish, give_up, hand_back, touch
from service.db.models import JobStatus, SnapshotRow
from service.db.registry import register_version
from service.db.runs import RunInput, record_progress, start_run
from service.jobs.outage import DatabaseOutage, retry_delay
from service.logs import log_event

log = logging.getLogger(__name__)

# History is written at most this often, so a fast job costs a handful of transactions.
FLUSH_SECONDS = 0.25
MAX_ERROR_CHARS = 500
# A failed write is tried again after 0.25 s, then twice as long each time up to 4 s,
# until the job went `stall_seconds` without progress.
COMMIT_RETRY_SECONDS = 0.25
COMMIT_RETRY_MAX_SECONDS = 4.0
# Two jobs of one model finishing at once on PostgreSQL can pick the same next version
# number; the loser retries with the following one.
REGISTER_TRIES = 3


Reaper = Callable[[Session], object]
T = TypeVar("T")


def still_running(session: Session) -> None:
    """The end of a transaction that only records progress: the job keeps running."""


class Progress:
    """When the run last moved: a chunk of epochs trained or a write committed. The
    heartbeat renews the lease only while this is recent (liveness means progress)."""

    def __init__(self) -> None:
        self.at = time.monotonic()

    def mark(self) -> None:
        self.at = time.monotonic()

    def idle_seconds(self) -> float:
        return time.monotonic() - self.at


class WriteStalled(Exception):
    """The job's writes kept failing until it went `stall_seconds` without progress."""

    def __init__(self, reason: str, seconds: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.seconds = seconds


def _traceback_unless_database(error: BaseException) -> bool:
    """Whether a failure's log line carries its traceback: not for the database's own
    errors (a full disk, a lock, a lost connection), whose reason says it all and which
    would otherwise flood the log with one traceback per try."""
    return not isinstance(error, OperationalError)


def _log_lease_lost(job_id: str, noticed_by: str) -> None:
    """The job is another worker's now: this one stops without writing anything more."""
    log_event(log, "job.lease_lost", level=logging.WARNING, job_id=job_id, noticed_by=noticed_by)


class Heartbeat:
    """A thread that refreshes the lease every `interval` seconds, in its own sessions,
    and sets `cancel_requested` or `lease_lost` when it notices either.

    With `reap`, it also runs that in a transaction of its own after each beat, so busy
    workers keep re-queueing the jobs of dead ones too; with `beat_worker`, it also calls
    that after each beat, to refresh the worker's own row (which must not raise). Beats
    that fail because the database is unavailable are reported to `outage`, which logs
    the outage once, and tried again at the next beat.

    The lease is renewed only while `progress` moved within `stall_seconds`: a run that
    stopped moving (training wedged, a write blocked) lets its lease expire, logging
    `job.stalled` once, so that a reap hands the job to another worker. Should the run
    move again first, renewing resumes.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        lease: Lease,
        interval: float,
        cancel_requested: threading.Event,
        lease_lost: threading.Event,
        reap: Reaper | None = None,
        beat_worker: Callable[[], None] | None = None,
        outage: DatabaseOutage | None = None,
        progress: Progress | None = None,
        stall_seconds: float = math.inf,
    ) -> None:
        self.session_factory = session_factory
        self.lease = lease
        self.interval = interval
        self.outage = outage or DatabaseOutage(lease.worker_id)
        self.progress = progress or Progress()
        self.stall_seconds = stall_seconds
        self.cancel_requested = cancel_requested
        self.lease_lost = lease_lost
        self.reap = reap
        self.beat_worker = beat_worker
        self._done = threading.Event()
        # In copies of the caller's context, so their log lines carry the job id too. The
        # stall is watched apart from the beats, which can block in the database as long
        # as the runner's writes (SQLite's busy timeout, a lock wait).
        self._threads = [
            threading.Thread(
                target=contextvars.copy_context().run,
                args=(target,),
                name=f"{name}-{lease.job_id}",
                daemon=True,
            )
            for name, target in (("heartbeat", self._beat), ("stall-watch", self._watch))
        ]

    def __enter__(self) -> "Heartbeat":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        for thread in self._threads:
            thread.join()

    def _watch(self) -> None:
        """Log `job.stalled` once each time the run goes `stall_seconds` without moving."""
        stalled = False
        while not self._done.wait(self.interval):
            idle_seconds = self.progress.idle_seconds()
            if idle_seconds <= self.stall_seconds:
                stalled = False
            elif not stalled:
                stalled = True
                log_event(
                    log,
                    "job.stalled",
                    level=logging.WARNING,
                    job_id=self.lease.job_id,
                    idle_seconds=round(idle_seconds, 1),
                    stall_seconds=self.stall_seconds,
                )

    def _beat(self) -> None:
        job_id = self.lease.job_id
        while not self._done.wait(self.interval):
            # A run that stopped moving gets no renewal: its lease expires.
            if self.progress.idle_seconds() <= self.stall_seconds:
                renewed = self._renew()
                if self.lease_lost.is_set():
                    return
                if not renewed:
                    continue
            if self.beat_worker is not None:
                self.beat_worker()
            if self.reap is not None:
                try:
                    with self.session_factory.begin() as session:
                        self.reap(session)
                except SQLAlchemyError as error:
                    if not self.outage.failed(error, "reap"):
                        log_event(
                            log,
                            "worker.reap_failed",
                            level=logging.ERROR,
                            exc_info=_traceback_unless_database(error),
                            job_id=job_id,
                            reason=reason(error),
                        )

    def _renew(self) -> bool:
        """Touch the lease; whether that got through (a lost lease sets `lease_lost`)."""
        job_id = self.lease.job_id
        try:
            with self.session_factory.begin() as session:
                if touch(session, self.lease):
                    self.cancel_requested.set()
        except LeaseLost:
            _log_lease_lost(job_id, noticed_by="heartbeat")
            self.lease_lost.set()
            return False
        except SQLAlchemyError as error:
            # The next beat may get through; the lease only expires after several misses.
            if not self.outage.failed(error, "heartbeat"):
                log_event(
                    log,
                    "job.heartbeat_failed",
                    level=logging.ERROR,
                    exc_info=_traceback_unless_database(error),
                    job_id=job_id,
                    reason=reason(error),
                )
            return False
        self.outage.succeeded()
        return True


def _trainer(spec: RunSpec, run: RunInput) -> Trainer:
    """The run's trainer: labels are encoded for the spec's output (one-hot, or one 0/1
    column) and their classes go into the model it trains."""
    names = run.feature_names
    # A warm start: the job keeps its own copy of the model it starts from.
    start = None if run.initial_weights is None else Model.from_bytes(run.initial_weights)
    if isinstance(run.targets, Labels):
        targets = run.targets.targets_for(spec.network)
        classes = run.targets.classes
        return Trainer(
            spec,
            run.inputs,
            targets,
            run.checkpoint,
            classes=classes,
            feature_names=names,
            start_from=start,
        )
    return Trainer(
        spec, run.inputs, run.targets, run.checkpoint, feature_names=names, start_from=start
    )


class JobRunner:
    """Runs one claimed job until it ends, the worker stops, or the lease is lost.

    Every write first checks the lease in the same transaction, so once another worker
    owns the job this one stops without writing anything more. `stop`, a cancel and the
    wall-clock limit `time_limit_seconds` (0: none) are noticed between chunks of epochs
    (`Trainer.train_epochs`: ~20 ms, or one epoch where an epoch takes longer).
    `reap`, `beat_worker` and `outage` go to its `Heartbeat`.

    A write that fails on the database (a full disk, a lock held elsewhere, a dropped
    connection, a database unavailable just now) pauses training and is retried (see
    `_retrying`) until the job went `stall_seconds` without progress; then the job is
    given up as a reap would (`leases.give_up`: queued again with the attempt counted, or
    failed with the reason after `max_attempts`), so it never stays `running` without
    moving.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        lease: Lease,
        stop: threading.Event,
        heartbeat_seconds: float,
        *,
        time_limit_seconds: float = 0.0,
        reap: Reaper | None = None,
        beat_worker: Callable[[], None] | None = None,
        outage: DatabaseOutage | None = None,
        stall_seconds: float = math.inf,
        max_attempts: int = 1,
        retry_backoff_seconds: float = 0.0,
    ) -> None:
        self.session_factory = session_factory
        self.lease = lease
        self.job_id = lease.job_id
        self.outage = outage or DatabaseOutage(lease.worker_id)
        self.stop = stop
        self.heartbeat_seconds = heartbeat_seconds
        self.time_limit_seconds = time_limit_seconds
        self.reap = reap
        self.beat_worker = beat_worker
        self.stall_seconds = stall_seconds
        self.max_attempts = max_attempts
        self.retry_backoff_seconds = retry_backoff_seconds
        self.progress = Progress()
        self.cancel_requested = threading.Event()
        self.lease_lost = threading.Event()
        self.pending: list[EpochRecord] = []
        self.pending_snapshots: list[SnapshotRow] = []
        self.snapshot_epoch = 0

    def run(self) -> JobStatus | None:
        """Train and finish the job; returns its new status (`queued` when handed back on
        stop), or None when the lease was lost or the database failed and nothing more
        could be written."""
        heartbeat = Heartbeat(
            self.session_factory,
            self.lease,
            self.heartbeat_seconds,
            self.cancel_requested,
            self.lease_lost,
            self.reap,
            self.beat_worker,
            self.outage,
            self.progress,
            self.stall_seconds,
        )
        with heartbeat:
            try:
                status = self._run()
            except LeaseLost:
                # Stopped without writing: the job is the new lease holder's.
                _log_lease_lost(self.job_id, noticed_by="runner")
                return None
            except WriteStalled as stalled:
                return self._give_up(stalled)
            except Exception as error:
                if isinstance(error, OperationalError) or is_unavailable(error):
                    # The lease expires and a worker resumes from the last checkpoint.
                    log_event(
                        log,
                        "job.abandoned",
                        level=logging.ERROR,
                        job_id=self.job_id,
                        reason=reason(error),
                    )
                    return None
                log_event(
                    log, "job.crashed", level=logging.ERROR, exc_info=True, job_id=self.job_id
                )
                return self._fail_after(error)
        action = "handed_back" if status == JobStatus.QUEUED else status.value
        log_event(log, f"job.{action}", job_id=self.job_id)
        return status

    def _run(self) -> JobStatus:
        job = self._start()
        try:
            spec = RunSpec.from_stored(job.spec)
            trainer = _trainer(spec, job)
        except SpecError as error:
            self._commit(end=self._ending(JobStatus.FAILED, error=f"cannot train: {error}"))
            return JobStatus.FAILED
        if job.resume_epoch:
            log_event(log, "job.resumed", job_id=self.job_id, epoch=job.resume_epoch)
        else:
            log_event(log, "job.started", job_id=self.job_id)

        # Measured on this machine's monotonic clock from here, but counted from the job's
        # first start by the database's clock: neither clock skew nor a resume resets it.
        deadline = (
            time.monotonic() + self.time_limit_seconds - job.elapsed_seconds
            if self.time_limit_seconds > 0
            else math.inf
        )
        timed_out = False
        last_flush = time.monotonic()
        while not trainer.done:
            if self.lease_lost.is_set():
                raise LeaseLost(self.job_id)
            if self.stop.is_set() or self.cancel_requested.is_set():
                break
            if time.monotonic() >= deadline:
                timed_out = True
                break
            # Epochs in chunks of ~20 ms (many small ones at once on the compiled engine),
            # never past the next checkpoint epoch.
            to_checkpoint = job.checkpoint_every - trainer.epoch % job.checkpoint_every
            self.pending += trainer.train_epochs(to_checkpoint).records()
            self.progress.mark()
            if trainer.done:
                break  # the final snapshot is written with the final state
            if trainer.epoch % job.checkpoint_every == 0:
                self.pending_snapshots.append(self._snapshot(trainer))
            # Snapshots wait for the next flush too: a crash then resumes from an earlier
            # checkpoint, which ends identically, and a fast job is not one commit per
            # checkpoint.
            if time.monotonic() - last_flush >= FLUSH_SECONDS:
                self._commit(end=still_running)
                last_flush = time.monotonic()

        if trainer.diverged:
            # The diverged epoch restored earlier weights (the best epoch's, or the previous
            # epoch's): the error names that epoch, and its snapshot holds them.
            end = self._ending(JobStatus.FAILED, error=trainer.stop_reason, trainer=trainer)
            self._commit(snapshot_of=trainer, end=end)
            return JobStatus.FAILED
        if trainer.done:
            return self._succeed(trainer, job.model_name)
        if self.cancel_requested.is_set():
            end = self._ending(JobStatus.CANCELLED, trainer=trainer)
            self._commit(snapshot_of=trainer, end=end)
            return JobStatus.CANCELLED
        if timed_out:
            reason = (
                f"exceeded the wall-clock limit of {self.time_limit_seconds:g} s "
                f"(BACKPROP_JOB_TIME_LIMIT_SECONDS) at epoch {trainer.epoch}"
            )
            end = self._ending(JobStatus.FAILED, error=reason, trainer=trainer)
            self._commit(snapshot_of=trainer, end=end)
            return JobStatus.FAILED
        return self._commit(snapshot_of=trainer, end=lambda session: hand_back(session, self.lease))

    def _start(self) -> RunInput:
        """Check the lease, read the run's input and rewind the job to its checkpoint."""

        def start() -> RunInput:
            with self.session_factory.begin() as session:
                if touch(session, self.lease):
                    self.cancel_requested.set()
                return start_run(session, self.job_id)

        run = self._retrying("start", start)
        self.snapshot_epoch = run.resume_epoch
        return run

    def _commit(
        self,
        *,
        snapshot_of: Trainer | None = None,
        weights: bytes | None = None,
        end: Callable[[Session], T],
    ) -> T:
        """`_write`, retried (see `_retrying`)."""
        return self._retrying("commit", lambda: self._write(snapshot_of, weights, end))

    def _retrying(self, during: str, write: Callable[[], T]) -> T:
        """`write()` (one transaction), tried again while it fails on the database, on a
        fresh connection each time: the failed transaction rolled back whole and every
        write in it is conditional on the lease, so repeating it is safe, and a passing
        fault costs the job no attempt.

        While the database is unavailable (`is_unavailable`: a restart, a lost server) it
        is retried with backoff, silently past the outage's one log line (`outage`); any
        other operational error (a full disk, a lock held elsewhere) logs one line with
        its reason per try. Once through, the lease check in it says whether the job is
        still this worker's (LeaseLost if it was reclaimed meanwhile). A stopped worker
        stops retrying an outage (the lease expires and the job resumes elsewhere); once
        the job went `stall_seconds` without progress (the heartbeat no longer renews the
        lease by then), raises WriteStalled."""
        commit_try = 0
        outage_tries = 0
        while True:
            try:
                result = write()
            except SQLAlchemyError as error:
                unavailable = self.outage.failed(error, during)
                if not unavailable and not isinstance(error, OperationalError):
                    raise
                if unavailable and self.stop.is_set():
                    raise
                cause = reason(error)
                idle_seconds = self.progress.idle_seconds()
                if idle_seconds >= self.stall_seconds:
                    raise WriteStalled(cause, idle_seconds) from error
                if unavailable:
                    outage_tries += 1
                    left = self.stall_seconds - idle_seconds
                    self.stop.wait(min(retry_delay(outage_tries), left))
                    continue
                commit_try += 1
                delay = min(
                    COMMIT_RETRY_SECONDS * 2 ** (commit_try - 1),
                    COMMIT_RETRY_MAX_SECONDS,
                    self.stall_seconds - idle_seconds,
                )
                # `commit_try`, not `attempt`: that field is the lease's attempt.
                log_event(
                    log,
                    "job.write_retry",
                    level=logging.WARNING,
                    job_id=self.job_id,
                    commit_try=commit_try,
                    reason=cause,
                    storage_full=is_storage_full(error),
                    retry_in_seconds=round(delay, 3),
                )
                time.sleep(delay)
                continue
            self.outage.succeeded()
            self.progress.mark()
            return result

    def _give_up(self, stalled: WriteStalled) -> JobStatus | None:
        """End the lease of a job whose writes kept failing (see `leases.give_up`).

        Where even that small write fails (a disk full to the last byte), it is tried
        again, one line with the reason each time, until it lands, the lease turns out
        lost (a reap took the job first) or the worker stops: whatever this worker could
        do instead needs a write too, and so the job ends with the reason that stalled it
        as soon as the database takes writes again.
        """
        error = (
            f"could not write its progress to the database for {stalled.seconds:.0f} s "
            f"(BACKPROP_STALL_SECONDS={self.stall_seconds:g}) on attempt {self.lease.attempt} "
            f"of max_attempts={self.max_attempts}: {stalled.reason}"
        )
        give_up_try = 0
        while True:
            try:
                with self.session_factory.begin() as session:
                    status = give_up(
                        session,
                        self.lease,
                        error[:MAX_ERROR_CHARS],
                        self.max_attempts,
                        self.retry_backoff_seconds,
                    )
                break
            except LeaseLost:
                _log_lease_lost(self.job_id, noticed_by="runner")
                return None
            except SQLAlchemyError as failure:
                # An unavailable database is logged once, by `outage`.
                unavailable = self.outage.failed(failure, "give_up")
                if not unavailable and not isinstance(failure, OperationalError):
                    raise
                give_up_try += 1
                delay = min(COMMIT_RETRY_SECONDS * 2 ** (give_up_try - 1), COMMIT_RETRY_MAX_SECONDS)
                if not unavailable:
                    log_event(
                        log,
                        "job.give_up_retry",
                        level=logging.ERROR,
                        job_id=self.job_id,
                        commit_try=give_up_try,
                        reason=reason(failure),
                        retry_in_seconds=delay,
                    )
                if self.stop.wait(delay):
                    # The lease expires and a reap ends the job, without this reason.
                    log_event(
                        log,
                        "job.abandoned",
                        level=logging.ERROR,
                        job_id=self.job_id,
                        reason=stalled.reason,
                    )
                    return None
        log_event(
            log,
            "job.given_up",
            level=logging.WARNING,
            job_id=self.job_id,
            outcome=status.value,
            reason=stalled.reason,
            stalled_seconds=round(stalled.seconds, 1),
        )
        return status

    def _write(
        self, snapshot_of: Trainer | None, weights: bytes | None, end: Callable[[Session], T]
    ) -> T:
        """In one transaction: check the lease, write the buffered history, progress and
        snapshots, a snapshot of `snapshot_of`'s weights at the epoch they are from (unless
        that epoch has one), then `end`, whose result it returns."""
        with self.session_factory.begin() as session:
            cancel_requested = touch(session, self.lease)
            snapshots = list(self.pending_snapshots)
            latest = snapshots[-1].epoch if snapshots else self.snapshot_epoch
            # A diverged run's kept weights are written even at the epoch the run started
            # from (0, or its checkpoint's): its error names that snapshot.
            if snapshot_of is not None and (
                snapshot_of.weights_epoch != latest or snapshot_of.diverged
            ):
                snapshots.append(self._snapshot(snapshot_of, weights))
            record_progress(session, self.job_id, self.pending, snapshots)
            result = end(session)
        self.pending.clear()
        self.pending_snapshots.clear()
        if snapshots:
            self.snapshot_epoch = snapshots[-1].epoch
            log_event(log, "job.checkpoint", job_id=self.job_id, epoch=self.snapshot_epoch)
        if cancel_requested:
            self.cancel_requested.set()
        return result

    def _snapshot(self, trainer: Trainer, weights: bytes | None = None) -> SnapshotRow:
        """The trainer's weights, at the epoch they come from. Weights restored from an
        earlier epoch (early stopping, divergence) get no checkpoint: the trainer's state
        is not that epoch's, so nothing may resume from it (a checkpoint already stored at
        that epoch is kept, see `record_progress`)."""
        current = trainer.weights_epoch == trainer.epoch and not trainer.diverged
        return SnapshotRow(
            job_id=self.job_id,
            epoch=trainer.weights_epoch,
            weights=trainer.model().to_bytes() if weights is None else weights,
            checkpoint=trainer.checkpoint() if current else None,
        )

    def _ending(
        self, status: JobStatus, error: str | None = None, trainer: Trainer | None = None
    ) -> Callable[[Session], None]:
        weights_epoch = None if trainer is None else trainer.weights_epoch

        def end(session: Session) -> None:
            finish(session, self.lease, status, error=error, weights_epoch=weights_epoch)

        return end

    def _succeed(self, trainer: Trainer, model_name: str | None) -> JobStatus:
        """Final snapshot, state and (with a model name) the model's next version, at once."""
        weights = trainer.model().to_bytes()

        def end(session: Session) -> int | None:
            version = None
            if model_name is not None:
                epoch = trainer.weights_epoch
                # The history row of that epoch is written by now (same transaction).
                metrics = epoch_metrics(session, self.job_id, epoch)
                version = register_version(
                    session, model_name, self.job_id, epoch, weights, metrics=metrics
                ).version
            finish(
                session,
                self.lease,
                JobStatus.SUCCEEDED,
                stop_reason=trainer.stop_reason,
                model_version=version,
                weights_epoch=trainer.weights_epoch,
            )
            return version

        for tries_left in reversed(range(REGISTER_TRIES)):
            try:
                version = self._commit(snapshot_of=trainer, weights=weights, end=end)
                break
            except IntegrityError:
                if model_name is None or not tries_left:
                    raise
        if version is not None:
            log_event(log, "job.registered", job_id=self.job_id, model=model_name, version=version)
        return JobStatus.SUCCEEDED

    def _fail_after(self, error: Exception) -> JobStatus | None:
        """Mark the job failed after an unexpected error, so it is never left running."""
        message = f"training failed unexpectedly: {type(error).__name__}: {error}"
        if isinstance(error, SQLAlchemyError):
            self.pending.clear()  # they may be what the database refused
            self.pending_snapshots.clear()
        try:
            self._commit(end=self._ending(JobStatus.FAILED, error=message[:MAX_ERROR_CHARS]))
        except (LeaseLost, SQLAlchemyError, WriteStalled):
            log_event(
                log, "job.fail_not_recorded", level=logging.ERROR, exc_info=True, job_id=self.job_id
            )
            return None
        return JobStatus.FAILED
