"""`backprop serve`: the API in this process and the workers as child processes."""

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading

import uvicorn
from threadpoolctl import threadpool_limits

from service.api.app import SchemaOutOfDate, check_schema, create_app
from service.config import Settings
from service.logs import configure_logging, log_event, logging_config

log = logging.getLogger("service.serve")

# Workers exit by themselves within their shutdown grace period (checkpointing and
# handing back their jobs); they are killed only if they overrun it by this much.
KILL_MARGIN_SECONDS = 5.0


def _die_with_parent() -> None:
    """In the child: get SIGTERM if `serve` dies, even by SIGKILL, so no worker is orphaned."""
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class WorkerPool:
    """`count` `backprop worker` processes, `nice` steps below the API's CPU priority,
    restarted if one dies while serving."""

    def __init__(self, count: int, grace_seconds: float, nice: int = 0) -> None:
        self.count = count
        self.grace_seconds = grace_seconds
        self.nice = nice
        self.processes: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="worker-watcher", daemon=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Workers read the same BACKPROP_ settings; the count tells them how to share the cores.
        env = {**os.environ, "BACKPROP_WORKERS": str(self.count)}
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"], env=env, preexec_fn=self._in_child
        )

    def _in_child(self) -> None:
        """Runs in each worker's process before `backprop worker` starts."""
        _die_with_parent()
        os.nice(self.nice)

    def start(self) -> None:
        self.processes = [self._spawn() for _ in range(self.count)]
        log_event(log, "serve.workers_started", pids=[process.pid for process in self.processes])
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for index, process in enumerate(self.processes):
                if process.poll() is not None and not self._stopping.is_set():
                    # Another one is started in its place.
                    log_event(
                        log,
                        "serve.worker_exited",
                        level=logging.WARNING,
                        pid=process.pid,
                        exit_code=process.returncode,
                    )
                    self.processes[index] = self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(self.grace_seconds + KILL_MARGIN_SECONDS)
            except subprocess.TimeoutExpired:
                log_event(log, "serve.worker_killed", level=logging.WARNING, pid=process.pid)
                process.kill()
                process.wait()


def serve(settings: Settings) -> None:
    """Run until Ctrl-C or SIGTERM, then stop the workers cleanly."""
    configure_logging(settings.log_level, settings.log_format)
    try:
        check_schema(settings)
    except SchemaOutOfDate as error:
        sys.exit(f"error: {error}")
    pool = WorkerPool(settings.workers, settings.shutdown_grace_seconds, settings.worker_nice)
    pool.start()
    # The API's matmuls are small and its requests concurrent: one BLAS thread each.
    threadpool_limits(1)
    try:
        # The access log is RequestTelemetry's: one line per request, with its id.
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_config=logging_config(settings.log_level, settings.log_format),
            log_level=settings.log_level.lower(),
            access_log=False,
        )
    finally:
        pool.stop()
