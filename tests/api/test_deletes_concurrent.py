"""Deletes while the service is busy, against `backprop serve` with a real worker process:
a job deleted while the worker trains another of its dataset, a job deleted just as its
worker finishes it, a model version deleted under predict traffic."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import func, select

from service.db import HistoryRow, ModelVersionRow, SnapshotRow, make_engine
from tests.helpers import XOR_DATASET, Server, job_finished, running_service
from tests.jobs.worker_helpers import wait_for

INPUTS = [[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]]


def job_body(dataset_id: str, model_name: str, epochs: int, seed: int = 0) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "model_name": model_name,
        "network": {"layers": [2, 4, 1], "hidden_activation": "tanh"},
        # The NumPy engine, whose epochs take long enough for a delete to overlap them.
        "training": {
            "learning_rate": 0.05,
            "epochs": epochs,
            "batch_size": 1,
            "seed": seed,
            "engine": "numpy",
        },
        # A snapshot every 50 epochs: the worker writes often while the delete runs.
        "checkpoint_every": 50,
    }


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    with running_service(database_url, tmp_path / "serve.log", workers=1) as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=server.base_url, timeout=30) as http:
        yield http


def submit(client: httpx2.Client, body: dict[str, Any]) -> str:
    job_id: str = client.post("/v1/jobs", json=body).raise_for_status().json()["id"]
    return job_id


def running(client: httpx2.Client, job_id: str) -> bool:
    job = client.get(f"/v1/jobs/{job_id}").json()
    return bool(job["status"] == "running" and job["epoch"] > 0)


def leftover_rows(database_url: str, job_id: str) -> dict[str, int]:
    """History and snapshot rows of `job_id`, and versions that still name it."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            counts = {
                table.__tablename__: connection.scalar(
                    select(func.count()).select_from(table).where(table.job_id == job_id)
                )
                or 0
                for table in (HistoryRow, SnapshotRow, ModelVersionRow)
            }
    finally:
        engine.dispose()
    return counts


def assert_gone(client: httpx2.Client, job_id: str) -> None:
    for path in ("", "/history", "/snapshots", "/snapshots/50"):
        assert client.get(f"/v1/jobs/{job_id}{path}").status_code == 404, path


def test_deleting_a_job_while_the_worker_finishes_another_of_its_dataset(
    client: httpx2.Client, database_url: str
) -> None:
    dataset_id = client.post("/v1/datasets", json=XOR_DATASET).json()["id"]
    finished = submit(client, job_body(dataset_id, "first", 100))
    assert job_finished(client, finished)["status"] == "succeeded"
    first_answer = client.post("/v1/models/first/predict", json={"inputs": INPUTS}).json()
    epochs = 6000
    busy = submit(client, job_body(dataset_id, "second", epochs))
    wait_for(lambda: running(client, busy), 30, "the second job to start")

    deleted = client.delete(f"/v1/jobs/{finished}")
    still_running = client.get(f"/v1/jobs/{busy}").json()

    assert deleted.status_code == 204, deleted.text
    assert still_running["status"] == "running", "the delete should overlap the training"
    assert_gone(client, finished)
    assert leftover_rows(database_url, finished) == {
        "history": 0,
        "snapshots": 0,
        "model_versions": 0,
    }
    done = job_finished(client, busy, timeout=120)
    assert done["status"] == "succeeded", done
    history = client.get(f"/v1/jobs/{busy}/history", params={"limit": 100_000}).json()["items"]
    assert [point["epoch"] for point in history] == list(range(1, epochs + 1))
    snapshots = client.get(f"/v1/jobs/{busy}/snapshots").json()["items"]
    assert [s["epoch"] for s in snapshots] == list(range(50, epochs + 1, 50))
    # The deleted job's model still answers, exactly as before.
    again = client.post("/v1/models/first/predict", json={"inputs": INPUTS}).json()
    assert again == first_answer
    assert client.get("/v1/models/first/versions/1").json()["job_id"] is None
    # Its dataset is still used by the other job, until that one goes too.
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 409
    assert client.delete(f"/v1/jobs/{busy}").status_code == 204
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204


def test_a_job_deleted_as_its_worker_finishes_it_goes_whole_or_not_at_all(
    client: httpx2.Client, database_url: str
) -> None:
    dataset_id = client.post("/v1/datasets", json=XOR_DATASET).json()["id"]
    # Long enough to be seen running past the worker's first progress flush (0.25 s) and
    # to take many refused deletes: 3000 epochs ended before that flush on a fast machine.
    epochs = 30_000
    job_id = submit(client, job_body(dataset_id, "raced", epochs))
    wait_for(lambda: running(client, job_id), 30, "the job to start")

    # DELETE as fast as answers come while the worker writes and finishes: refused while
    # the job runs, then accepted once, with nothing of the job left behind.
    answers: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and 204 not in answers:
        answers.append(client.delete(f"/v1/jobs/{job_id}").status_code)

    assert answers[-1] == 204, answers[-5:]
    assert set(answers[:-1]) <= {409}, sorted(set(answers))
    assert len(answers) > 10, "the deletes should overlap the training"
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 404
    assert_gone(client, job_id)
    assert leftover_rows(database_url, job_id) == {
        "history": 0,
        "snapshots": 0,
        "model_versions": 0,
    }
    # It succeeded before it went: its version is registered, and predicts.
    version = client.get("/v1/models/raced/versions/1").json()
    assert version["job_id"] is None and version["epoch"] == epochs
    assert client.post("/v1/models/raced/predict", json={"inputs": INPUTS}).status_code == 200


def test_deleting_a_version_under_predict_traffic_answers_200_or_404_never_5xx(
    client: httpx2.Client, server: Server
) -> None:
    dataset_id = client.post("/v1/datasets", json=XOR_DATASET).json()["id"]
    for seed in (0, 1):
        job_id = submit(client, job_body(dataset_id, "served", 200, seed))
        assert job_finished(client, job_id)["status"] == "succeeded"
    stop = threading.Event()
    # (what was asked, when the request was sent, status, version answered)
    seen: list[tuple[str, float, int, int | None]] = []
    lock = threading.Lock()

    def fire(choice: dict[str, Any], kind: str) -> None:
        with httpx2.Client(base_url=server.base_url, timeout=30) as http:
            while not stop.is_set():
                sent = time.monotonic()
                response = http.post("/v1/models/served/predict", json={"inputs": INPUTS, **choice})
                version = response.json()["model"]["version"] if response.is_success else None
                with lock:
                    seen.append((kind, sent, response.status_code, version))

    threads = [
        threading.Thread(target=fire, args=choice)
        for choice in [({"version": 2}, "version 2"), ({}, "latest")] * 3
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        deleted = client.delete("/v1/models/served/versions/2")
        done_at = time.monotonic()
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    assert deleted.status_code == 204, deleted.text
    assert {status for _, _, status, _ in seen} <= {200, 404}
    before = [(kind, status, v) for kind, sent, status, v in seen if sent < done_at]
    after = [(kind, status, v) for kind, sent, status, v in seen if sent > done_at]
    assert ("version 2", 200, 2) in before and ("latest", 200, 2) in before
    assert {(status, v) for kind, status, v in after if kind == "version 2"} == {(404, None)}
    assert {(status, v) for kind, status, v in after if kind == "latest"} == {(200, 1)}
    assert (
        client.post("/v1/models/served/predict", json={"inputs": INPUTS, "version": 2}).status_code
        == 404
    )
