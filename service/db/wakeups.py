"""Waking idle workers on SQLite: a named pipe next to the database file.

PostgreSQL wakes idle workers with NOTIFY (`jobs.notify_job_queued`). SQLite has nothing
of the kind, so each worker opens a FIFO at `<database file>-wake` (beside SQLite's own
`-wal` and `-shm`), making it if it is missing, and a transaction that queues a job
writes a byte into it once it commits: an idle worker waiting on the pipe claims at once
instead of at its next poll. Best effort on both ends: no pipe, no worker reading it or
a full pipe only mean that the job waits for a poll, as it would without the pipe.
"""

import contextlib
import errno
import os
import select
import stat
import threading
import time
from pathlib import Path

from sqlalchemy import URL, event
from sqlalchemy.orm import Session

# A worker waiting on the pipe still looks at its stop event this often.
STOP_CHECK_SECONDS = 0.25
SUFFIX = "-wake"


def pipe_path(url: URL) -> Path | None:
    """The wake-up pipe of a SQLite file database; None for other databases and for
    SQLite in memory."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database).with_name(Path(database).name + SUFFIX)


def wake_after_commit(session: Session, path: Path) -> None:
    """Wake a worker waiting on `path` once the session's transaction commits (nothing
    on rollback: the job was never queued)."""
    event.listen(session, "after_commit", lambda _: wake(path), once=True)


def wake(path: Path) -> None:
    """Write one byte into the pipe without blocking; do nothing if no worker has it
    open (ENXIO), it is missing, or it is full (the workers are awake already)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(descriptor, b"\n")
    except OSError:
        pass
    finally:
        os.close(descriptor)


class WakePipe:
    """A worker's end of the pipe. `open` makes the FIFO if it is missing; the worker
    keeps it open for reading and writing, so that it never sees end-of-file."""

    def __init__(self, descriptor: int) -> None:
        self.descriptor: int | None = descriptor

    @classmethod
    def open(cls, url: URL) -> "WakePipe | None":
        """The pipe of a SQLite file database, or None for other databases; OSError where
        it cannot be made or opened (the worker then only polls)."""
        path = pipe_path(url)
        if path is None:
            return None
        with contextlib.suppress(FileExistsError):
            os.mkfifo(path, 0o600)
        descriptor = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        if not stat.S_ISFIFO(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise OSError(errno.EEXIST, "not a named pipe", str(path))
        return cls(descriptor)

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Return True once woken, False once `stop` is set or `timeout` seconds passed."""
        assert self.descriptor is not None
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # In slices, because a signal does not interrupt the wait for the pipe.
            readable, _, _ = select.select([self.descriptor], [], [], min(left, STOP_CHECK_SECONDS))
            if readable:
                self._drain()
                return True
        return False

    def _drain(self) -> None:
        # Every byte written so far: one claim answers them all (it takes the next due
        # job; the worker claims again after each job it runs).
        assert self.descriptor is not None
        try:
            while os.read(self.descriptor, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None
