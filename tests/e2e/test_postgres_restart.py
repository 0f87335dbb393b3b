"""PostgreSQL restarts under `backprop serve` (the API and its workers as real processes)
while jobs train and a client predicts: a private cluster (tests/pg_cluster.py) is
stopped with `-m fast` or `-m immediate` for a few seconds, then started again.

Marked `postgres_restart`: `pytest -m postgres_restart` runs them alone.
"""

import functools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from service.core.datasets import generate
from service.db import JobRow, make_session_factory
from tests.helpers import Server, running_service
from tests.jobs.worker_helpers import (
    flat_bytes,
    history_epochs,
    snapshots,
    uninterrupted_weights,
)
from tests.pg_cluster import PrivateCluster, pg_bin_or_skip

pytestmark = pytest.mark.postgres_restart

DOWN_SECONDS = 3.0
PREDICT_EVERY_SECONDS = 0.02
# A request that takes longer hangs, as far as these tests are concerned.
REQUEST_TIMEOUT_SECONDS = 10.0
JOBS = 4
EPOCHS = 400
CHECKPOINT_EVERY = 50
MOONS = generate("moons", 100, noise=0.1)
XOR_GENERATOR = {"generator": {"kind": "xor", "n_samples": 4}}
# A worker's lines per outage beyond its one "unavailable" and one "available": the
# LISTEN connection's loss, a job's lease found taken over on the way back, and the like.
OTHER_LINES_PER_OUTAGE = 6


def moons_job(seed: int) -> dict[str, Any]:
    """A 2-8-1 network, per-sample SGD on the NumPy engine: a second or two per job."""
    return {
        "network": {
            "layers": [2, 8, 1],
            "hidden_activation": "tanh",
            "output_activation": "sigmoid",
        },
        "training": {
            "loss": "binary_crossentropy",
            "learning_rate": 0.05,
            "epochs": EPOCHS,
            "batch_size": 1,
            "seed": seed,
            "engine": "numpy",
        },
    }


@functools.cache
def reference_weights(seed: int) -> bytes:
    """The job's final parameters, trained in one go in this process."""
    return flat_bytes(uninterrupted_weights(moons_job(seed), *MOONS))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    pg_bin_or_skip()
    cluster = PrivateCluster(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@dataclass
class Traffic:
    """1-row predicts every PREDICT_EVERY_SECONDS and a /ready probe every 0.1 s, each
    answer recorded with the time it was sent, until `stop`."""

    base_url: str
    model: str
    predicts: list[tuple[float, int, str, float]] = field(default_factory=list)
    probes: list[tuple[float, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.threads = [
            threading.Thread(target=self._predict, daemon=True),
            threading.Thread(target=self._probe, daemon=True),
        ]

    def __enter__(self) -> "Traffic":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def _predict(self) -> None:
        url = f"/v1/models/{self.model}/predict"
        with httpx2.Client(base_url=self.base_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
            while not self.stopping.wait(PREDICT_EVERY_SECONDS):
                sent = time.monotonic()
                try:
                    response = client.post(url, json={"inputs": [[1.0, -1.0]]})
                except httpx2.HTTPError as error:
                    self.failures.append(f"predict: {type(error).__name__}: {error}")
                    continue
                kind = response.headers.get("content-type", "")
                if response.status_code == 503:
                    assert response.headers.get("retry-after"), response.headers
                    kind += f" {response.json()['detail']}"
                self.predicts.append((sent, response.status_code, kind, time.monotonic() - sent))

    def _probe(self) -> None:
        with httpx2.Client(base_url=self.base_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
            while not self.stopping.wait(0.1):
                sent = time.monotonic()
                try:
                    self.probes.append((sent, client.get("/ready").status_code))
                except httpx2.HTTPError as error:
                    self.failures.append(f"ready: {type(error).__name__}: {error}")


def log_lines(server: Server) -> list[dict[str, Any]]:
    logged = server.log.read_text()
    return [json.loads(line) for line in logged[: logged.rfind("\n") + 1].splitlines()]


def epochs_done(sessions: sessionmaker[Session], job_ids: list[str]) -> int:
    with sessions() as session:
        query = select(func.sum(JobRow.epoch)).where(JobRow.id.in_(job_ids))
        return int(session.scalar(query) or 0)


def wait_until(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.parametrize(
    ("mode", "lease_seconds"),
    [
        # Leases outlive the outage: each worker carries on with the job it holds.
        ("fast", "30"),
        # Leases expire during the outage: the reaper requeues the jobs and workers
        # resume them from their checkpoints, as after a crash.
        ("immediate", "1"),
    ],
)
def test_postgres_restart_while_jobs_train_and_clients_predict(
    cluster: PrivateCluster,
    tmp_path: Path,
    mode: str,
    lease_seconds: str,
    record_property: Any,
) -> None:
    url = cluster.create_database(f"restart_{mode}_{uuid.uuid4().hex[:8]}")
    settings = {
        "BACKPROP_HEARTBEAT_SECONDS": "0.2",
        "BACKPROP_LEASE_TIMEOUT_SECONDS": lease_seconds,
        "BACKPROP_MAX_ATTEMPTS": "100",
        "BACKPROP_RETRY_BACKOFF_SECONDS": "0.05",
    }
    # The test's own reads: a new connection each, so none of them outlives the outage.
    reader = create_engine(url, poolclass=NullPool)
    sessions = make_session_factory(reader)
    with (
        running_service(url, tmp_path / "serve.log", workers=2, environment=settings) as server,
        httpx2.Client(base_url=server.base_url, timeout=30) as client,
    ):
        api_pid, worker_pids = server.process.pid, server.worker_pids()

        # A model loaded in the API before the outage.
        xor = client.post("/v1/datasets", json={"name": "xor", **XOR_GENERATOR}).json()["id"]
        served = client.post(
            "/v1/jobs",
            json={
                "dataset_id": xor,
                "model_name": "served",
                "network": {"layers": [2, 4, 1], "hidden_activation": "tanh"},
                "training": {"epochs": 50, "seed": 0},
            },
        ).json()["id"]
        wait_until(
            lambda: client.get(f"/v1/jobs/{served}").json()["status"] == "succeeded",
            60,
            "the served model's job",
        )
        assert client.post("/v1/models/served/predict", json={"inputs": [[1, -1]]}).is_success

        moons = client.post(
            "/v1/datasets",
            json={"name": "moons", "inputs": MOONS[0].tolist(), "targets": MOONS[1].tolist()},
        )
        assert moons.status_code == 201, moons.text
        job_ids = [
            client.post(
                "/v1/jobs",
                json={
                    "dataset_id": moons.json()["id"],
                    **moons_job(seed),
                    "checkpoint_every": CHECKPOINT_EVERY,
                },
            ).json()["id"]
            for seed in range(JOBS)
        ]

        with Traffic(server.base_url, "served") as traffic:
            wait_until(lambda: epochs_done(sessions, job_ids) >= 50, 60, "the jobs to train")
            before = epochs_done(sessions, job_ids)
            went_down = time.monotonic()
            cluster.stop(mode)
            # What needs the database meanwhile: a job's state, a model not loaded yet,
            # a new dataset.
            time.sleep(0.5)
            needing_database = [
                client.get(f"/v1/jobs/{job_ids[0]}"),
                client.post("/v1/models/not-loaded/predict", json={"inputs": [[1, -1]]}),
                client.post("/v1/datasets", json={"name": "late", **XOR_GENERATOR}),
            ]
            time.sleep(max(0.0, went_down + DOWN_SECONDS - time.monotonic()))
            cluster.start()
            came_back = time.monotonic()
            wait_until(
                lambda: epochs_done(sessions, job_ids) > before, 60, "the jobs to progress again"
            )
            recovered_seconds = time.monotonic() - came_back
            wait_until(
                lambda: all(
                    client.get(f"/v1/jobs/{job_id}").json()["status"]
                    in ("succeeded", "failed", "cancelled")
                    for job_id in job_ids
                ),
                120,
                "the jobs to end",
            )
            time.sleep(0.5)  # a few answers after the end too
        jobs = [client.get(f"/v1/jobs/{job_id}").json() for job_id in job_ids]
        still_running = [server.process.pid, *server.worker_pids()]
        lines = log_lines(server)
    reader.dispose()

    print(f"PostgreSQL stop -m {mode}: jobs progressed {recovered_seconds:.2f} s after it was back")
    record_property("recovered_seconds", round(recovered_seconds, 3))

    # Every job ended as an uninterrupted run does.
    assert [job["status"] for job in jobs] == ["succeeded"] * JOBS, jobs
    for seed, job_id in enumerate(job_ids):
        assert history_epochs(sessions, job_id) == list(range(1, EPOCHS + 1))
        final = snapshots(sessions, job_id)[-1]
        assert final.epoch == EPOCHS
        assert flat_bytes(final.weights) == reference_weights(seed)

    # No process was restarted.
    assert still_running == [api_pid, *worker_pids]
    assert not [line for line in lines if line["message"] == "serve.worker_exited"]

    # Predictions: answered by the loaded model, or 503 problem+json; no 500, no hang.
    assert traffic.failures == []
    statuses = Counter((status, kind) for _, status, kind, _ in traffic.predicts)
    print(f"predict answers: {dict(statuses)}")
    assert {status for status, _ in statuses} <= {200, 503}, statuses
    assert all(
        kind.startswith("application/problem+json") for status, kind in statuses if status == 503
    ), statuses
    assert max(elapsed for *_, elapsed in traffic.predicts) < REQUEST_TIMEOUT_SECONDS
    outage_predicts = [p for p in traffic.predicts if went_down <= p[0] <= came_back]
    assert len(outage_predicts) > 50, "the client kept sending during the outage"

    # Requests that need the database while it is down: 503 problem+json, Retry-After.
    for response in needing_database:
        assert response.status_code == 503, (response.request.url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert int(response.headers["retry-after"]) > 0
        assert "database is unavailable" in response.json()["detail"]

    # /ready: 503 while down, 200 after.
    assert {status for _, status in traffic.probes} <= {200, 503}
    assert 503 in {status for sent, status in traffic.probes if went_down < sent < came_back}
    assert [status for sent, status in traffic.probes if sent > came_back][-5:] == [200] * 5

    # Each worker said once that the database went away and once that it came back.
    for pid in worker_pids:
        own = [line for line in lines if f":{pid}:" in str(line.get("worker", ""))]
        events = Counter(line["message"] for line in own)
        assert events["worker.database_unavailable"] == 1, events
        assert events["worker.database_available"] == 1, events
        noisy = [
            line["message"]
            for line in own
            if line["level"] in ("WARNING", "ERROR")
            and line["message"] not in ("worker.database_unavailable", "job.reaped")
        ]
        assert len(noisy) <= OTHER_LINES_PER_OUTAGE, Counter(noisy)
        assert not [line for line in own if "exc_info" in line], "no tracebacks"
