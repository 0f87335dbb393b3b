"""A newcomer's first session, against `backprop serve` started as a real process."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.helpers import (
    Server,
    backprop_command,
    example_spec,
    free_port,
    job_finished,
    running_service,
)

XOR_INPUTS = [[1, 1], [-1, 1], [1, -1], [-1, -1]]
XOR_TARGETS = [1, 0, 0, 1]

# The README's examples: the notebook's own configuration and the 2-8-1 tanh network.
NOTEBOOK_JOB = {"model_name": "notebook", **example_spec("notebook"), "checkpoint_every": 100}
TANH_JOB = {"model_name": "xor-net", **example_spec("xor-tanh"), "checkpoint_every": 50}


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    with running_service(database_url, tmp_path / "serve.log", workers=2) as server:
        yield server


def test_newcomer_trains_xor_and_predicts(server: Server) -> None:
    with httpx2.Client(base_url=server.base_url, timeout=30) as client:
        dataset = client.post(
            "/v1/datasets", json={"name": "xor", "generator": {"kind": "xor", "n_samples": 4}}
        )
        assert dataset.status_code == 201, dataset.text
        dataset_id = dataset.json()["id"]

        submitted = [
            client.post("/v1/jobs", json={"dataset_id": dataset_id, **body})
            for body in (NOTEBOOK_JOB, TANH_JOB)
        ]
        assert [response.status_code for response in submitted] == [202, 202]
        assert all(response.json()["status"] == "queued" for response in submitted)
        notebook, tanh = (job_finished(client, response.json()["id"]) for response in submitted)
        assert notebook["status"] == "succeeded", notebook
        assert tanh["status"] == "succeeded", tanh
        assert (tanh["epoch"], tanh["progress"], tanh["model_version"]) == (500, 1.0, 1)

        # The whole history: one row per epoch, with the notebook's RMSE.
        history = client.get(f"/v1/jobs/{notebook['id']}/history", params={"limit": 1000}).json()
        assert [point["epoch"] for point in history["items"]] == list(range(1, 501))
        assert history["next_cursor"] is None
        assert all(point["rmse"] is not None for point in history["items"])
        downsampled = client.get(
            f"/v1/jobs/{notebook['id']}/history", params={"max_points": 50}
        ).json()
        assert 2 <= len(downsampled["items"]) <= 50
        assert downsampled["items"][-1]["epoch"] == 500

        snapshots = client.get(f"/v1/jobs/{tanh['id']}/snapshots").json()["items"]
        assert [snapshot["epoch"] for snapshot in snapshots] == list(range(50, 501, 50))

        prediction = client.post("/v1/models/xor-net/predict", json={"inputs": XOR_INPUTS}).json()
        assert prediction["model"] == {"name": "xor-net", "version": 1}
        outputs = [row[0] for row in prediction["outputs"]]
        assert [output > 0.5 for output in outputs] == [target == 1 for target in XOR_TARGETS], (
            outputs
        )

        early = client.post(
            f"/v1/jobs/{tanh['id']}/predict", json={"inputs": XOR_INPUTS, "epoch": 50}
        ).json()
        assert early["epoch"] == 50
        assert [row[0] for row in early["outputs"]] != outputs

        weights = client.get(f"/v1/jobs/{tanh['id']}/snapshots/500").json()
        assert [len(layer["weights"]) for layer in weights["layers"]] == [8, 1]


def test_the_container_checks_flow_passes_against_a_local_service(server: Server) -> None:
    # scripts/container-check runs this script against the image; run here too, it cannot
    # drift from what the service answers without the suite noticing.
    script = Path(__file__).resolve().parents[2] / "scripts" / "newcomer_flow.py"
    flow = subprocess.run(
        [sys.executable, str(script), server.base_url, "--job-timeout", "60"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert flow.returncode == 0, flow.stdout + flow.stderr
    assert "reproduces XOR" in flow.stdout


def test_ctrl_c_stops_the_api_and_its_workers(server: Server) -> None:
    workers = server.worker_pids()

    server.process.send_signal(signal.SIGINT)

    assert server.process.wait(timeout=30) == 0, server.log.read_text()
    for pid in workers:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )


def test_workers_do_not_outlive_a_killed_server(server: Server) -> None:
    workers = server.worker_pids()

    server.process.kill()
    server.process.wait()

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)


def alive(pid: int) -> bool:
    """True for a running process; an exited child not yet reaped (zombie) counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_serve_refuses_an_unmigrated_database(database_url: str) -> None:
    env = {**os.environ, "BACKPROP_DATABASE_URL": database_url}

    result = subprocess.run(
        backprop_command("serve", "--port", str(free_port())),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "backprop db upgrade" in result.stderr
