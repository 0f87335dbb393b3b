"""A full disk under SQLite, with the real `backprop serve` (API and a worker process) on
a database file on a small tmpfs that the test mounts (as root).

What a user checks: while the disk is full, writes answer 507 problem+json naming the
cause (one log line each, no traceback), reads and predictions of a loaded model keep
working, and a job that cannot write its history pauses, logging the reason; space back
within `BACKPROP_STALL_SECONDS`, the job goes on and ends as if uninterrupted. A job
whose disk stays full fails with that reason after the bound, never `succeeded` with
missing rows; space back, new work runs; `PRAGMA integrity_check` is `ok`.
"""

import json
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.helpers import job_finished, running_service
from tests.jobs.test_faults import MOONS, moons_spec, reference_weights
from tests.jobs.worker_helpers import flat_bytes, wait_for

# Seconds a job's writes may fail before its worker gives it up: long enough for the test
# to see the pause and free the space on a loaded machine, short enough to wait out.
STALL_SECONDS = 6
DISK_MB = 48
# Freed once the second job filled the disk by itself: the space an operator frees. More
# than the WAL file holds: SQLite's first checkpoint after the space returns copies the
# WAL's pages into the database file, which grows by as much.
BALLAST_MB = 24
SETTINGS = {
    "BACKPROP_STALL_SECONDS": str(STALL_SECONDS),
    "BACKPROP_HEARTBEAT_SECONDS": "0.2",
    # Longer than the pause: a heartbeat cannot be written while the disk is full either.
    "BACKPROP_LEASE_TIMEOUT_SECONDS": "30",
    "BACKPROP_POLL_INTERVAL_SECONDS": "0.02",
    "BACKPROP_MAX_ATTEMPTS": "1",
}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_MB mounted for this test, unmounted after it."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        why = f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    try:
        yield mount_point
    finally:
        # Lazily: a process still closing the database must not leave the mount behind.
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no space left; the file, to delete later."""
    filler = disk / f"filler-{uuid.uuid4().hex[:6]}"
    chunk = b"\0" * (256 * 1024)
    with filler.open("wb") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError:
            pass
    return filler


def log_lines(log: Path, event: str) -> list[dict[str, Any]]:
    logged = log.read_text(errors="replace")
    ended = logged[: logged.rfind("\n") + 1].splitlines()
    return [line for line in map(json.loads, ended) if line.get("message") == event]


def moons_dataset() -> dict[str, Any]:
    inputs, targets = MOONS
    return {"name": "moons", "inputs": inputs.tolist(), "targets": targets.tolist()}


def job_body(dataset_id: str, spec: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"dataset_id": dataset_id, **spec, **fields}


def history(client: httpx2.Client, job_id: str) -> list[int]:
    response = client.get(f"/v1/jobs/{job_id}/history", params={"limit": 10000})
    assert response.status_code == 200, response.text
    return [row["epoch"] for row in response.json()["items"]]


def test_a_full_disk_pauses_jobs_and_writes_and_freeing_it_lets_work_continue(
    small_disk: Path, tmp_path: Path
) -> None:
    database = small_disk / "backprop.db"
    log = tmp_path / "serve.log"
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (BALLAST_MB << 20))
    with (
        running_service(f"sqlite:///{database}", log, 1, SETTINGS) as server,
        httpx2.Client(base_url=server.base_url, timeout=30) as client,
    ):
        dataset_id = client.post("/v1/datasets", json=moons_dataset()).json()["id"]
        # A model loaded in the API before the disk fills.
        small = moons_spec(20, seed=0)
        first = client.post("/v1/jobs", json=job_body(dataset_id, small, model_name="moons"))
        assert job_finished(client, first.json()["id"])["status"] == "succeeded"
        predict = {"inputs": [[0.5, 0.25]]}
        assert client.post("/v1/models/moons/predict", json=predict).status_code == 200

        # 1. The disk fills while a job trains, and is freed within the bound.
        spec = moons_spec(300, seed=1)
        job_id = client.post(
            "/v1/jobs", json=job_body(dataset_id, spec, checkpoint_every=20)
        ).json()["id"]
        wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["epoch"] >= 1, 30, "training")
        filler = fill(small_disk)
        refused = [
            client.post(
                "/v1/datasets", json={"name": "late", "inputs": [[0.0]], "targets": [[0.0]]}
            )
            for _ in range(3)
        ]
        for response in refused:
            assert response.status_code == 507, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["title"] == "Insufficient storage"
            assert "database or disk is full" in response.json()["detail"]
        retries = wait_for(
            lambda: [line for line in log_lines(log, "job.write_retry") if line["storage_full"]],
            30,
            "the worker to log its retry",
        )
        paused = client.get(f"/v1/jobs/{job_id}")
        reads = [paused, client.get(f"/v1/jobs/{job_id}/history"), client.get("/v1/jobs")]
        predicted = client.post("/v1/models/moons/predict", json=predict)
        filler.unlink()

        assert [response.status_code for response in reads] == [200, 200, 200]
        assert paused.json()["status"] == "running"
        assert predicted.status_code == 200
        assert retries[0]["job_id"] == job_id
        assert retries[0]["reason"] == "database or disk is full"

        done = job_finished(client, job_id)
        assert (done["status"], done["error"], done["epoch"]) == ("succeeded", None, 300)
        assert history(client, job_id) == list(range(1, 301))

        # 2. A job fills the disk by itself (a large snapshot every epoch) and it stays
        # full: after the bound the job fails, naming the cause, with the rows it wrote.
        wide = {
            "network": {"layers": [2, 256, 256, 1], "hidden_activation": "tanh"},
            "training": {"learning_rate": 0.01, "epochs": 200, "engine": "numpy"},
        }
        filling = client.post("/v1/jobs", json=job_body(dataset_id, wide, checkpoint_every=1))
        filling_id = filling.json()["id"]

        def stalled() -> bool:
            job = client.get(f"/v1/jobs/{filling_id}").json()
            gave_up = log_lines(log, "job.given_up") + log_lines(log, "job.give_up_retry")
            return job["status"] == "failed" or any(
                line["job_id"] == filling_id for line in gave_up
            )

        wait_for(stalled, 60 + 2 * STALL_SECONDS, "the worker to give the job up")
        # Where even that small write found no space, it lands once space is freed.
        ballast.unlink()
        failed = job_finished(client, filling_id)
        assert failed["status"] == "failed"
        assert "database or disk is full" in failed["error"]
        assert f"BACKPROP_STALL_SECONDS={STALL_SECONDS}" in failed["error"]
        assert 0 < failed["epoch"] < 200
        assert history(client, filling_id) == list(range(1, failed["epoch"] + 1))

        # Space back: new work is accepted and runs.
        created = client.post("/v1/datasets", json=moons_dataset())
        assert created.status_code == 201, created.text
        again = client.post("/v1/jobs", json=job_body(created.json()["id"], small))
        assert job_finished(client, again.json()["id"])["status"] == "succeeded"

    logged = log.read_text()
    assert "Traceback" not in logged
    assert len(log_lines(log, "request.storage_full")) == len(refused)
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # The paused job ended with exactly the weights of a run that never paused.
        (final,) = connection.execute(
            "SELECT weights FROM snapshots WHERE job_id = ? AND epoch = 300", (job_id,)
        ).fetchone()
    assert flat_bytes(final) == reference_weights(spec)
