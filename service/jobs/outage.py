"""A worker process's view of whether its database can be reached.

During an outage (a PostgreSQL restart, a lost connection) every database call of the
worker fails: the claim loop's, the heartbeat's, the running job's writes. Each of them
reports here instead of logging, so the process logs one line when the outage begins and
one when a call gets through again, however many calls failed in between.
"""

import logging
import random
import threading
import time

from service.db.failures import is_unavailable, reason
from service.logs import log_event

log = logging.getLogger("service.jobs.worker")

# Waits between tries while the database is unavailable: doubling from the first to the
# last, so a worker notices the database back within about the last.
FIRST_RETRY_SECONDS = 0.05
LAST_RETRY_SECONDS = 1.0


def retry_delay(tries: int) -> float:
    """The wait before try `tries + 1` (from 1), with jitter so workers do not retry in
    lockstep."""
    delay: float = min(LAST_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2.0 ** max(0, tries - 1))
    return delay * random.uniform(0.8, 1.2)


class DatabaseOutage:
    """Whether the worker's database is unavailable, as its calls last found it; shared
    by the threads of one worker process."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self._lock = threading.Lock()
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException, during: str) -> bool:
        """Note a failed call; whether `error` means the database is unavailable (the
        caller then tries again later, and logs nothing itself). The first such failure
        of an outage is logged, with what the worker was doing (`during`)."""
        if not is_unavailable(error):
            return False
        with self._lock:
            if self._since is None:
                self._since = time.monotonic()
                cause = getattr(error, "orig", None) or error
                log_event(
                    log,
                    "worker.database_unavailable",
                    level=logging.WARNING,
                    worker=self.worker_id,
                    during=during,
                    error=f"{type(cause).__name__}: {reason(error)}",
                )
        return True

    def succeeded(self) -> None:
        """Note a call that got through: ends the outage, if one was going on."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            down = time.monotonic() - self._since
            self._since = None
        log_event(
            log,
            "worker.database_available",
            worker=self.worker_id,
            unavailable_seconds=round(down, 3),
        )
