"""Soak: the whole service for a set time under predict and job traffic, with faults.

Run from the repository root (127.0.0.1 only; see bench/README.md, "## Soak"):

    .venv/bin/python bench/soak.py [--minutes 10] [--check] [--database postgresql|sqlite]

What runs, as an operator would run it (the docker-compose layout, with this script as the
supervisor that restarts what dies):
  - a private PostgreSQL cluster (`initdb` in a temp dir, a free port; tests/pg_cluster.py),
    or with `--database sqlite` a SQLite file;
  - API "long": `backprop serve --workers 2`, never killed, so its RSS is watched over the
    whole run; its workers are killed with kill -9 at random and `serve` respawns them;
  - API "crash": `backprop serve --workers 1`, a second replica on the same database,
    killed with kill -9 every few minutes and restarted by this script on the same port
    (as a restart policy would); its worker gets SIGTERM from the kernel when it dies
    (PR_SET_PDEATHSIG), hands its job back and exits;
  - predict clients: several threads, each a keep-alive connection sending 1-row
    predicts to already trained models, most of them to API "long";
  - job traffic: a small job (two moons, 2-16-1) submitted every second or two to either
    API, some snapshotting every few epochs, some only at the end;
  - PostgreSQL stopped every few minutes, `pg_ctl stop -m fast` and `-m immediate` in
    turn, a few seconds down, then started again.

At the end the traffic and the faults stop, every job gets a drain period to finish, and
it prints: jobs created / succeeded / lost (lost = not succeeded after the drain, or
succeeded with a history that is not exactly epochs 1..N), 5xx answers inside database
outages (a grace window after the database returns included) and outside them, transport
errors, p50/p99 predict latency and the RSS of the API and worker processes per minute,
the RSS growth of API "long" after warm-up with the number of requests it covers, and a
verdict per target. `--check` exits 1 when a target misses. Every process it starts is
stopped at the end (also on errors and Ctrl-C) and its temp dir removed.
"""

import argparse
import csv
import http.client
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.pg_cluster import PrivateCluster, find_pg_bin  # noqa: E402

HOST = "127.0.0.1"
MAX_MINUTES = 24 * 60
REQUEST_TIMEOUT = 10.0
RSS_TARGET_MB = 20.0
RSS_TARGET_REQUESTS = 100_000
TERMINAL = ("succeeded", "failed", "cancelled")
PREDICT_MODELS = ("soak-a", "soak-b")
JOB_MODEL = "soak-jobs"
SERVE = [sys.executable, "-m", "service.cli", "serve"]
MOONS = {"kind": "moons", "n_samples": 200, "noise": 0.2, "seed": 0}

# Short leases so that a killed worker's job is taken over within seconds, not the default
# 30 s; more attempts than the default 3 because the kills here are the script's, at a rate
# no machine sees: a job failed for having been killed 3 times would be the script's doing.
SERVICE_SETTINGS = {
    "BACKPROP_HEARTBEAT_SECONDS": "1",
    "BACKPROP_LEASE_TIMEOUT_SECONDS": "5",
    "BACKPROP_MAX_ATTEMPTS": "10",
    "BACKPROP_LOG_FORMAT": "json",
}


# --------------------------------------------------------------------------- the timeline


@dataclass
class Window:
    start: float
    end: float | None = None  # None while it lasts


class Timeline:
    """When the database was down and when API "crash" was restarting, to classify errors."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.database: list[Window] = []
        self.api_restarts: list[Window] = []
        self.lock = threading.Lock()

    def begin(self, windows: list[Window]) -> Window:
        with self.lock:
            window = Window(time.monotonic())
            windows.append(window)
            return window

    def end(self, window: Window) -> None:
        with self.lock:
            window.end = time.monotonic()

    @staticmethod
    def _overlaps(windows: list[Window], start: float, end: float, grace: float) -> bool:
        for window in windows:
            window_end = float("inf") if window.end is None else window.end + grace
            if start <= window_end and end >= window.start:
                return True
        return False

    def in_database_outage(self, start: float, end: float) -> bool:
        return self._overlaps(self.database, start, end, self.grace)

    def in_api_restart(self, start: float, end: float) -> bool:
        return self._overlaps(self.api_restarts, start, end, self.grace)


# --------------------------------------------------------------------------- requests


@dataclass
class Failure:
    """A request answered with a 5xx, or not answered at all."""

    start: float
    end: float
    kind: str  # predict, submit, poll, ...
    target: str  # the API's name
    status: int | None  # None: no answer (error names why)
    error: str


@dataclass
class Minute:
    predicts: int = 0
    latencies: list[float] = field(default_factory=list)


class Recorder:
    def __init__(self, started: float, minutes: float) -> None:
        self.started = started
        self.last_minute = max(0, int(-(-minutes // 1)) - 1)
        self.lock = threading.Lock()
        self.minutes: dict[int, Minute] = {}
        self.failures: list[Failure] = []
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.answered_by: Counter[str] = Counter()

    def minute(self, at: float) -> Minute:
        return self.minutes.setdefault(self.minute_of(at), Minute())

    def minute_of(self, at: float) -> int:
        # The last moments of traffic (the threads' last requests) count in the last minute.
        return min(int((at - self.started) // 60), self.last_minute)

    def record(
        self, kind: str, target: str, start: float, end: float, status: int | None, error: str
    ) -> None:
        with self.lock:
            if status is not None:
                self.statuses[(kind, status)] += 1
                self.answered_by[target] += 1
            if kind == "predict":
                minute = self.minute(start)
                minute.predicts += 1
                if status == 200:
                    minute.latencies.append(end - start)
            if status is None or status >= 500:
                self.failures.append(Failure(start, end, kind, target, status, error))


class Api:
    """One `backprop serve` process, restartable on the same port."""

    def __init__(self, name: str, port: int, workers: int) -> None:
        self.name = name
        self.port = port
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid


class Client:
    """A keep-alive HTTP connection that records every request it makes."""

    def __init__(self, api: Api, recorder: Recorder) -> None:
        self.api = api
        self.recorder = recorder
        self.connection: http.client.HTTPConnection | None = None

    def request(
        self, kind: str, method: str, path: str, body: Any = None
    ) -> tuple[int | None, bytes]:
        payload = None if body is None else json.dumps(body).encode()
        start = time.monotonic()
        status, data, error = self._send(method, path, payload, retry_stale=True)
        self.recorder.record(kind, self.api.name, start, time.monotonic(), status, error)
        return status, data

    def _send(
        self, method: str, path: str, payload: bytes | None, retry_stale: bool
    ) -> tuple[int | None, bytes, str]:
        headers = {"content-type": "application/json"} if payload is not None else {}
        reused = self.connection is not None
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection(
                    HOST, self.api.port, timeout=REQUEST_TIMEOUT
                )
            self.connection.request(method, path, payload, headers)
            response = self.connection.getresponse()
            data = response.read()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            self.close()
            # A kept-alive connection the server had closed while idle: sent again once on
            # a new one, as HTTP clients do; on a new connection it is an error.
            if reused and retry_stale:
                return self._send(method, path, payload, retry_stale=False)
            return None, b"", "connection reset"
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return None, b"", type(exc).__name__
        if response.will_close:
            self.close()
        error = data[:300].decode(errors="replace") if response.status >= 500 else ""
        return response.status, data, error

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int | None) -> list[int]:
    """The process's children, whichever of its threads started them (`serve` respawns
    workers from a watcher thread, and each thread lists only its own children)."""
    if pid is None:
        return []
    pids = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            pids += [int(child) for child in listing.read_text().split()]
    return pids


class Supervisor:
    """Starts the service's processes, each in a session of its own (its workers with it),
    and stops every one of them at the end."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.started: list[subprocess.Popen[bytes]] = []
        self.lock = threading.Lock()

    def run(self, *arguments: str, timeout: float = 120) -> None:
        subprocess.run(
            [sys.executable, "-m", "service.cli", *arguments],
            env=self.env,
            cwd=ROOT,
            check=True,
            timeout=timeout,
            capture_output=True,
        )

    def spawn(self, api: Api) -> None:
        with (self.workdir / f"{api.name}.log").open("a") as sink:
            process = subprocess.Popen(
                [*SERVE, "--port", str(api.port), "--workers", str(api.workers)],
                env=self.env,
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with self.lock:
            self.started.append(process)
        api.process = process

    def start(self, api: Api, stop: threading.Event, timeout: float = 120) -> None:
        """Start `api` and wait for it to answer /health; started again when it exits
        before (say its schema check could not reach the database)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.spawn(api)
            assert api.process is not None
            while api.process.poll() is None and time.monotonic() < deadline:
                try:
                    connection = http.client.HTTPConnection(HOST, api.port, timeout=2)
                    connection.request("GET", "/health")
                    if connection.getresponse().status == 200:
                        connection.close()
                        return
                    connection.close()
                except OSError:
                    pass
                if stop.wait(0.1):
                    return
            if stop.wait(1.0):
                return
        raise RuntimeError(f"{api.name} did not start in {timeout:.0f} s")

    def stop_all(self) -> None:
        # SIGINT first: `backprop serve` then stops its workers itself.
        with self.lock:
            processes = list(self.started)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            with suppress(subprocess.TimeoutExpired):
                process.wait(40)
        # Then the whole session of each, so that no worker outlives its server.
        for process in processes:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --------------------------------------------------------------------------- the soak


@dataclass
class Faults:
    worker_kills: int = 0
    api_kills: int = 0
    database_restarts: Counter[str] = field(default_factory=Counter)
    database_modes: list[str] = field(default_factory=list)
    api_downtimes: list[str] = field(default_factory=list)
    unexpected_exits: list[str] = field(default_factory=list)
    database_down_seconds: float = 0.0


@dataclass
class RssSample:
    at: float
    long_api: float | None
    crash_api: float | None
    workers: list[float]
    long_requests: int


def job_spec(dataset_id: str, rng: random.Random, model_name: str | None) -> dict[str, Any]:
    epochs = rng.randint(60, 200)
    return {
        "dataset_id": dataset_id,
        "model_name": model_name,
        "network": {"layers": [2, 16, 1], "hidden_activation": "tanh"},
        "training": {
            "learning_rate": 0.1,
            "epochs": epochs,
            "batch_size": 8,
            "seed": rng.randint(0, 1000),
            # The NumPy engine: a job takes a second or more, so kills land mid-run.
            "engine": "numpy",
        },
        # Some snapshot every few epochs, some only at the end.
        "checkpoint_every": rng.choice([5, 20, 10_000]),
    }


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.rng = random.Random(args.seed)
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.timeline = Timeline(args.grace)
        self.recorder = Recorder(self.started, args.minutes)
        self.faults = Faults()
        self.long_api = Api("long", free_port(), workers=2)
        self.crash_api = Api("crash", free_port(), workers=1)
        self.cluster: PrivateCluster | None = None
        self.supervisor: Supervisor | None = None
        self.created: list[str] = []
        self.created_lock = threading.Lock()
        self.rss: list[RssSample] = []
        self.epochs: list[tuple[float, float]] = []
        self.loads: dict[int, float] = {}
        self.dataset_id = ""
        self.threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ setup

    def database_url(self) -> str:
        if self.args.database == "sqlite":
            return f"sqlite:///{self.workdir / 'soak.db'}"
        self.cluster = PrivateCluster(self.workdir / "pg")
        self.cluster.start()
        return self.cluster.create_database("soak")

    def set_up(self) -> None:
        env = {**os.environ, **SERVICE_SETTINGS, "BACKPROP_DATABASE_URL": self.database_url()}
        self.supervisor = Supervisor(self.workdir, env)
        self.supervisor.run("db", "upgrade")
        self.supervisor.start(self.long_api, self.stop)
        self.supervisor.start(self.crash_api, self.stop)
        client = Client(self.long_api, self.recorder)
        status, data = client.request(
            "setup", "POST", "/v1/datasets", {"name": "soak-moons", "generator": MOONS}
        )
        if status != 201:
            raise RuntimeError(f"dataset refused: {status} {data[:300]!r}")
        self.dataset_id = json.loads(data)["id"]
        # The models the predict clients ask: trained before the clock starts.
        setup_jobs = []
        for name in PREDICT_MODELS:
            spec = job_spec(self.dataset_id, self.rng, name)
            status, data = client.request("setup", "POST", "/v1/jobs", spec)
            if status != 202:
                raise RuntimeError(f"job refused: {status} {data[:300]!r}")
            setup_jobs.append(json.loads(data)["id"])
        for job_id in setup_jobs:
            job = self.wait_for(client, job_id, 120)
            if job is None or job["status"] != "succeeded":
                raise RuntimeError(f"setup job {job_id} did not succeed: {job}")
        client.close()

    def wait_for(self, client: Client, job_id: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        job: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            status, data = client.request("poll", "GET", f"/v1/jobs/{job_id}")
            if status == 200:
                job = json.loads(data)
                if job["status"] in TERMINAL:
                    return job
            time.sleep(0.2)
        return job

    # ------------------------------------------------------------------ traffic

    def predict_client(self, api: Api, interval: float, models: tuple[str, ...]) -> None:
        client = Client(api, self.recorder)
        rng = random.Random(self.rng.random())
        next_at = time.monotonic()
        while not self.stop.is_set():
            name = rng.choice(models)
            row = [rng.uniform(-1.5, 2.5), rng.uniform(-1, 1.5)]
            client.request("predict", "POST", f"/v1/models/{name}/predict", {"inputs": [row]})
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            else:
                next_at = time.monotonic()  # behind: no burst to catch up
        client.close()

    def job_submitter(self) -> None:
        clients = [Client(self.long_api, self.recorder), Client(self.crash_api, self.recorder)]
        rng = random.Random(self.rng.random())
        while not self.stop.wait(rng.uniform(0.5, 1.5) * self.args.job_every):
            client = rng.choice(clients)
            model_name = JOB_MODEL if rng.random() < 0.5 else None
            spec = job_spec(self.dataset_id, rng, model_name)
            status, data = client.request("submit", "POST", "/v1/jobs", spec)
            if status == 202:
                with self.created_lock:
                    self.created.append(json.loads(data)["id"])
        for client in clients:
            client.close()

    # ------------------------------------------------------------------ faults

    def all_worker_pids(self) -> list[int]:
        return children(self.long_api.pid()) + children(self.crash_api.pid())

    def worker_killer(self) -> None:
        rng = random.Random(self.rng.random())
        while not self.stop.wait(rng.uniform(0.5, 1.5) * self.args.worker_kill_every):
            pids = self.all_worker_pids()
            if pids:
                with suppress(ProcessLookupError):
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    self.faults.worker_kills += 1

    def api_killer(self) -> None:
        """Kill -9 API crash now and then and restart it; restart either API if it exits
        by itself (which counts as an unexpected exit: nothing here asked for it)."""
        rng = random.Random(self.rng.random())
        assert self.supervisor is not None
        next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * self.args.api_kill_every
        while not self.stop.wait(0.5):
            for api in (self.long_api, self.crash_api):
                assert api.process is not None
                if api.process.poll() is not None:
                    at = time.monotonic() - self.started
                    self.faults.unexpected_exits.append(
                        f"API {api.name} exited with {api.process.returncode} at {at:.0f} s"
                    )
                    self.restart(api, kill=False)
            if time.monotonic() >= next_kill:
                self.restart(self.crash_api, kill=True)
                self.faults.api_kills += 1
                next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * self.args.api_kill_every

    def restart(self, api: Api, kill: bool) -> None:
        assert self.supervisor is not None and api.process is not None
        window = self.timeline.begin(self.timeline.api_restarts)
        if kill:
            api.process.kill()
        api.process.wait()
        self.supervisor.start(api, self.stop)
        self.timeline.end(window)
        assert window.end is not None
        self.faults.api_downtimes.append(
            f"{window.start - self.started:.0f} s (answering again after "
            f"{window.end - window.start:.1f} s)"
        )

    def database_restarter(self) -> None:
        rng = random.Random(self.rng.random())
        assert self.cluster is not None
        modes = ["fast", "immediate"]
        while not self.stop.wait(self.args.pg_restart_every * rng.uniform(0.8, 1.2)):
            mode = modes[len(self.faults.database_modes) % 2]
            self.faults.database_modes.append(mode)
            window = self.timeline.begin(self.timeline.database)
            try:
                self.cluster.stop(mode)
                time.sleep(rng.uniform(3.0, 5.0))
            finally:
                self.cluster.start()
                self.timeline.end(window)
            assert window.end is not None
            self.faults.database_restarts[mode] += 1
            self.faults.database_down_seconds += window.end - window.start

    # ------------------------------------------------------------------ measurements

    def sampler(self) -> None:
        while True:
            now = time.monotonic()
            with self.recorder.lock:
                answered = self.recorder.answered_by[self.long_api.name]
            self.rss.append(
                RssSample(
                    now,
                    rss_mb(self.long_api.pid()),
                    rss_mb(self.crash_api.pid()),
                    [r for r in map(rss_mb, self.all_worker_pids()) if r is not None],
                    answered,
                )
            )
            minute = int((now - self.started) // 60)
            self.loads[minute] = float(Path("/proc/loadavg").read_text().split()[0])
            if self.stop.wait(5.0):
                return

    def progress_probe(self) -> None:
        """The epochs recorded over all jobs (`/metrics` of API long), twice a second: when
        training moves again after the database returns."""
        client = Client(self.long_api, self.recorder)
        while not self.stop.wait(0.5):
            status, data = client.request("metrics", "GET", "/metrics")
            if status != 200:
                continue
            for line in data.decode().splitlines():
                if line.startswith("backprop_epochs_trained_total "):
                    self.epochs.append((time.monotonic(), float(line.split()[1])))
        client.close()

    def progress_delay(self, window: Window) -> float | None:
        """Seconds from the database being back to the first epoch recorded after it."""
        assert window.end is not None
        before = [value for at, value in self.epochs if at <= window.start]
        if not before:
            return None
        for at, value in self.epochs:
            if at > window.end and value > before[-1]:
                return at - window.end
        return None

    # ------------------------------------------------------------------ the run

    def thread(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def run(self) -> int:
        self.set_up()
        duration = self.args.minutes * 60
        self.started = time.monotonic()
        self.recorder = Recorder(self.started, self.args.minutes)
        clients = self.args.clients
        interval = clients / self.args.rate
        # One client in `clients` on API "crash", and one asks the model the jobs retrain
        # (a new version every few seconds: the latest version is looked up each time).
        for index in range(clients):
            api = self.crash_api if index == 0 else self.long_api
            models = (*PREDICT_MODELS, JOB_MODEL) if index == 1 else PREDICT_MODELS
            self.thread(self.predict_client, api, interval, models)
        self.thread(self.job_submitter)
        self.thread(self.worker_killer)
        self.thread(self.api_killer)
        if self.cluster is not None:
            self.thread(self.database_restarter)
        self.thread(self.sampler)
        self.thread(self.progress_probe)
        print(f"soak: running {self.args.minutes:g} min ...", file=sys.stderr, flush=True)
        while time.monotonic() - self.started < duration:
            time.sleep(1.0)
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
        traffic_ended = time.monotonic()
        # The database and API "crash" are up again (the threads finish their fault first).
        print("soak: draining ...", file=sys.stderr, flush=True)
        return self.report(self.drain(), traffic_ended)

    def drain(self) -> dict[str, dict[str, Any]]:
        """Every job the service has, once they have all ended or the drain time is up."""
        client = Client(self.long_api, self.recorder)
        deadline = time.monotonic() + self.args.drain
        while True:
            jobs = self.list_jobs(client, deadline + 60)
            if all(job["status"] in TERMINAL for job in jobs.values()):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
        client.close()
        return jobs

    def list_jobs(self, client: Client, deadline: float) -> dict[str, dict[str, Any]]:
        jobs: dict[str, dict[str, Any]] = {}
        cursor = None
        while True:
            path = "/v1/jobs?limit=500" + (f"&cursor={cursor}" if cursor else "")
            status, data = client.request("poll", "GET", path)
            if status != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot list the jobs: {status} {data[:300]!r}")
                time.sleep(1.0)
                continue
            page = json.loads(data)
            jobs.update({job["id"]: job for job in page["items"]})
            cursor = page["next_cursor"]
            if not cursor:
                return jobs

    def history_is_exact(self, client: Client, job: dict[str, Any]) -> bool:
        status, data = client.request("poll", "GET", f"/v1/jobs/{job['id']}/history?format=csv")
        if status != 200:
            return False
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        epochs = [int(row["epoch"]) for row in rows]
        return epochs == list(range(1, job["epochs_total"] + 1))

    # ------------------------------------------------------------------ the report

    def report(self, jobs: dict[str, dict[str, Any]], traffic_ended: float) -> int:
        args = self.args
        client = Client(self.long_api, self.recorder)
        created = set(self.created)
        # Jobs the service created though the client got no 202 (an error, no answer).
        unacknowledged = {
            job_id
            for job_id, job in jobs.items()
            if job_id not in created and job["model_name"] not in PREDICT_MODELS
        }
        checked = created | unacknowledged
        succeeded = {
            job_id for job_id in checked if jobs.get(job_id, {}).get("status") == "succeeded"
        }
        bad_history = {
            job_id for job_id in succeeded if not self.history_is_exact(client, jobs[job_id])
        }
        client.close()
        lost = (checked - succeeded) | bad_history
        lost_states = Counter(jobs.get(job_id, {}).get("status", "missing") for job_id in lost)

        # A request that got no answer from API crash while it was being restarted counts
        # as the restart's, even if the database was down too; other failures overlapping
        # a database outage (its grace window included) count as the outage's.
        in_outage: list[Failure] = []
        outside: list[Failure] = []
        no_answer_restart: list[Failure] = []
        for failure in self.recorder.failures:
            if (
                failure.status is None
                and failure.target == self.crash_api.name
                and self.timeline.in_api_restart(failure.start, failure.end)
            ):
                no_answer_restart.append(failure)
            elif self.timeline.in_database_outage(failure.start, failure.end):
                in_outage.append(failure)
            else:
                outside.append(failure)
        fivexx_in = [f for f in in_outage if f.status is not None]
        fivexx_out = [f for f in outside if f.status is not None]
        no_answer_other = [f for f in outside if f.status is None]

        print(f"## Soak: {args.database}, {args.minutes:g} min, seed {args.seed}")
        print()
        print(
            f"- load: {args.clients} predict clients at {args.rate:g} req/s in all (1 on API "
            f"crash), a job every ~{args.job_every:g} s; machine load average "
            f"{min(self.loads.values()):.1f}-{max(self.loads.values()):.1f} (2 cores)"
        )
        restarts = self.faults.database_restarts
        database = (
            f"{sum(restarts.values())} PostgreSQL restarts ({restarts['fast']} fast, "
            f"{restarts['immediate']} immediate; down {self.faults.database_down_seconds:.0f} s "
            f"in all, grace {args.grace:g} s after each)"
            if self.cluster is not None
            else "no database restarts (SQLite)"
        )
        print(
            f"- faults: {self.faults.worker_kills} worker kill -9 (respawned by serve), "
            f"{self.faults.api_kills} API kill -9 (restarted by the script), {database}"
        )
        print(f"- API restarts at: {', '.join(self.faults.api_downtimes) or 'none'}")
        print(
            "- processes that exited by themselves: "
            f"{'; '.join(self.faults.unexpected_exits) or 'none'}"
        )
        print()
        print(
            "| minute | load | predicts | p50 ms | p99 ms | 5xx in outage | 5xx outside "
            "| no answer | RSS API long MB | RSS API crash MB | RSS workers MB (max) |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for index in sorted(self.recorder.minutes):
            minute = self.recorder.minutes[index]
            latencies = sorted(minute.latencies)

            def in_minute(f: Failure, i: int = index) -> bool:
                return self.recorder.minute_of(f.start) == i

            samples = [s for s in self.rss if self.recorder.minute_of(s.at) == index]
            last = samples[-1] if samples else None
            workers = [rss for sample in samples for rss in sample.workers]
            print(
                f"| {index + 1} | {self.loads.get(index, float('nan')):.1f} "
                f"| {minute.predicts} | {percentile(latencies, 50)} | {percentile(latencies, 99)} "
                f"| {sum(map(in_minute, fivexx_in))} | {sum(map(in_minute, fivexx_out))} "
                f"| {sum(1 for f in self.recorder.failures if f.status is None and in_minute(f))} "
                f"| {mb(last.long_api if last else None)} | {mb(last.crash_api if last else None)} "
                f"| {mb(max(workers) if workers else None)} |"
            )
        print()

        print(
            f"- jobs: {len(created)} created (202) + {len(unacknowledged)} created without a "
            f"202; {len(succeeded)} succeeded, {len(lost)} lost "
            f"({dict(lost_states) or 'none'}; {len(bad_history)} with a history not 1..N)"
        )
        finished = [jobs[job_id] for job_id in succeeded]
        run_times = sorted(seconds_between(job, "started_at", "finished_at") for job in finished)
        attempts = Counter(job["attempts"] for job in finished)
        if run_times:
            print(
                f"  - succeeded jobs: started -> finished median {percentile(run_times, 50, 1)} "
                f"s, max {run_times[-1]:.1f} s; by attempts: {dict(sorted(attempts.items()))}"
            )
        statuses = Counter((f.kind, f.status) for f in fivexx_in + fivexx_out)
        print(
            f"- 5xx: {len(fivexx_in)} inside database outages, {len(fivexx_out)} outside "
            f"(by route and status: {dict(statuses) or 'none'})"
        )
        print(
            f"- no answer (timeout {REQUEST_TIMEOUT:g} s, refused, reset): "
            f"{sum(1 for f in in_outage if f.status is None)} inside database outages, "
            f"{len(no_answer_restart)} to API crash while it restarted, "
            f"{len(no_answer_other)} elsewhere"
        )
        for failure in (fivexx_out + no_answer_other)[:5]:
            print(
                f"  - outside: {failure.start - self.started:.1f} s, {failure.kind} to API "
                f"{failure.target}: {failure.status} {failure.error[:200]}"
            )
        for number, window in enumerate(self.timeline.database, 1):
            assert window.end is not None
            hits = [
                f for f in in_outage if Timeline._overlaps([window], f.start, f.end, args.grace)
            ]
            late = [f.end - window.end for f in hits if f.end > window.end]
            latest = f", the last {max(late):.1f} s after it was back" if late else ""
            delay = self.progress_delay(window)
            print(
                f"  - restart {number} (-m {self.faults.database_modes[number - 1]}) at "
                f"{window.start - self.started:.0f} s, down {window.end - window.start:.1f} s: "
                f"{sum(f.status is not None for f in hits)} 5xx, "
                f"{sum(f.status is None for f in hits)} unanswered{latest}; epochs recorded "
                f"again {'?' if delay is None else f'{delay:.1f}'} s after it was back"
            )
        errors = Counter(f.error for f in self.recorder.failures if f.status is None)
        print(f"- unanswered requests by error: {dict(errors) or 'none'}")
        answered = self.recorder.answered_by
        print(
            f"- answered requests: API long {answered[self.long_api.name]}, "
            f"API crash {answered[self.crash_api.name]}"
        )
        growth, window_requests = self.rss_growth(traffic_ended)
        print(
            f"- RSS of API long: {growth:+.1f} MB from the end of warm-up "
            f"({args.warmup:g} s) to the end of traffic, over {window_requests} requests"
        )
        self.print_log_summary()

        status_500 = sum(f.status == 500 for f in fivexx_in + fivexx_out)
        verdicts = [
            ("0 jobs lost", not lost),
            ("0 5xx outside database outages", not fivexx_out),
            # During an outage the database is unavailable, a 503; a 500 is a bug anywhere.
            ("0 answers 500, outages included", not status_500),
            (
                f"RSS growth of API long < {RSS_TARGET_MB:g} MB after warm-up",
                growth < RSS_TARGET_MB,
            ),
        ]
        print()
        for target, met in verdicts:
            print(f"- {target}: {'met' if met else 'MISSED'}")
        if window_requests < RSS_TARGET_REQUESTS:
            print(
                f"- the RSS window covers {window_requests} requests, fewer than the "
                f"{RSS_TARGET_REQUESTS} the target names: growth measured, target not proven"
            )
        print(f"- answers other than 5xx outside outages: {len(no_answer_other)} unanswered")
        return 1 if args.check and not all(met for _, met in verdicts) else 0

    def rss_growth(self, traffic_ended: float) -> tuple[float, int]:
        samples = [s for s in self.rss if s.long_api is not None and s.at <= traffic_ended + 1]
        after = [s for s in samples if s.at - self.started >= self.args.warmup]
        if len(after) < 2:
            return 0.0, 0
        first, last = after[0], after[-1]
        assert first.long_api is not None and last.long_api is not None
        return last.long_api - first.long_api, last.long_requests - first.long_requests

    def print_log_summary(self) -> None:
        """Warnings and errors the service logged, by event: one line per outage, not a flood."""
        events: Counter[str] = Counter()
        tracebacks = 0
        for log in self.workdir.glob("*.log"):
            for line in log.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    tracebacks += line.startswith("Traceback")
                    continue
                if isinstance(entry, dict) and entry.get("level") in (
                    "WARNING",
                    "ERROR",
                    "CRITICAL",
                ):
                    message = str(entry.get("message")).splitlines()[0]
                    events[f"{entry.get('level')} {message}"] += 1
                    tracebacks += "Traceback" in str(entry.get("exc_info", "")) or bool(
                        entry.get("exc_info")
                    )
        top = ", ".join(f"{event} x{count}" for event, count in events.most_common(12))
        print(f"- service log, warnings and errors by event: {top or 'none'}")
        print(f"- log lines with a traceback: {tracebacks}")

    def close(self) -> None:
        self.stop.set()
        if self.supervisor is not None:
            self.supervisor.stop_all()
        if self.cluster is not None:
            self.cluster.destroy()


def percentile(values: list[float], q: float, scale: float = 1000) -> str:
    """The q-th percentile of sorted `values` (nearest rank), in ms by default."""
    if not values:
        return "-"
    index = min(len(values) - 1, round(q / 100 * (len(values) - 1)))
    return f"{values[index] * scale:.1f}"


def seconds_between(job: dict[str, Any], start: str, end: str) -> float:
    return (datetime.fromisoformat(job[end]) - datetime.fromisoformat(job[start])).total_seconds()


def mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def scratch_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="backprop-soak-"))
    try:
        yield directory
    finally:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
        print("soak: every process stopped, temp dir removed", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="traffic time (default 10)")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target misses")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients", type=int, default=6, help="predict clients (threads)")
    parser.add_argument("--rate", type=float, default=350.0, help="predicts/s, all clients")
    parser.add_argument("--job-every", type=float, default=1.5, help="seconds between jobs")
    parser.add_argument("--worker-kill-every", type=float, default=None, help="seconds")
    parser.add_argument("--api-kill-every", type=float, default=None, help="seconds")
    parser.add_argument("--pg-restart-every", type=float, default=None, help="seconds")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds after an outage")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds for jobs to end")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before RSS counts")
    args = parser.parse_args()
    if not 0 < args.minutes <= MAX_MINUTES:
        parser.error(f"--minutes must be in (0, {MAX_MINUTES}]")
    if args.clients < 2 or args.rate <= 0:
        parser.error("--clients must be at least 2 and --rate positive")
    seconds = args.minutes * 60
    # Short runs still see each fault: about three database restarts and two API kills.
    args.pg_restart_every = args.pg_restart_every or min(150.0, seconds / 3)
    args.api_kill_every = args.api_kill_every or min(120.0, seconds / 2)
    args.worker_kill_every = args.worker_kill_every or min(20.0, seconds / 6)
    args.warmup = args.warmup if args.warmup is not None else min(60.0, seconds / 5)
    if args.database == "postgresql" and find_pg_bin() is None:
        parser.error("--database postgresql needs initdb and pg_ctl under /usr/lib/postgresql")

    # Ctrl-C and SIGTERM alike stop everything (SIGINT is ignored in background jobs).
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    with scratch_dir() as workdir:
        soak = Soak(args, workdir)
        try:
            return soak.run()
        except KeyboardInterrupt:
            print("soak: interrupted", file=sys.stderr)
            return 130
        finally:
            soak.close()


if __name__ == "__main__":
    sys.exit(main())
