"""Metadata truth over HTTP, with a real worker: after early stopping restores the best
epoch's weights, or a divergence keeps earlier ones, the job, its snapshots and the model
version it registers all name the epoch those weights are from."""

import re
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.config import Settings
from service.db import ModelVersionRow, SnapshotRow, make_engine, make_session_factory
from service.jobs.worker import Worker
from tests.helpers import XOR_DATASET, diverging_run
from tests.jobs.worker_helpers import worker_settings

# The data as given, as `diverging_run` trains it (scaled, it would not diverge).
PLAIN = {"inputs": "none", "targets": "none"}
XOR_INPUTS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
NETWORK = {"layers": [2, 4, 1], "hidden_activation": "tanh"}
# No epoch after the first improves the loss by 1.0: early stopping ends epoch 4 and
# restores the weights of epoch 1.
EARLY_STOPPING = {
    "learning_rate": 0.01,
    "epochs": 5000,
    "early_stopping_patience": 3,
    "early_stopping_min_delta": 1.0,
}


def run_job(
    client: TestClient,
    settings: Settings,
    training: dict[str, Any],
    dataset: dict[str, Any] = XOR_DATASET,
    network: dict[str, Any] = NETWORK,
    **fields: Any,
) -> dict[str, Any]:
    """Submit a job (on XOR by default), let a worker train it, and return it as the API
    shows it."""
    dataset_id = client.post("/v1/datasets", json=dataset).json()["id"]
    created = client.post(
        "/v1/jobs",
        json={"dataset_id": dataset_id, "network": network, "training": training, **fields},
    )
    assert created.status_code == 202, created.text
    with Worker(worker_settings(settings.database_url)) as worker:
        worker.run(threading.Event(), until_idle=True)
    job: dict[str, Any] = client.get(f"/v1/jobs/{created.json()['id']}").json()
    return job


def stored_rows(settings: Settings, job_id: str) -> tuple[list[SnapshotRow], list[ModelVersionRow]]:
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            snapshots = session.scalars(
                select(SnapshotRow).where(SnapshotRow.job_id == job_id).order_by(SnapshotRow.epoch)
            ).all()
            versions = session.scalars(
                select(ModelVersionRow).where(ModelVersionRow.job_id == job_id)
            ).all()
            return list(snapshots), list(versions)
    finally:
        engine.dispose()


def epochs_of(client: TestClient, job_id: str) -> list[int]:
    page = client.get(f"/v1/jobs/{job_id}/snapshots").json()
    return [item["epoch"] for item in page["items"]]


@pytest.mark.parametrize(("checkpoint_every", "snapshot_epochs"), [(50, [1]), (1, [1, 2, 3])])
def test_early_stopping_labels_the_version_snapshot_and_job_with_the_restored_epoch(
    client: TestClient, settings: Settings, checkpoint_every: int, snapshot_epochs: list[int]
) -> None:
    job = run_job(
        client, settings, EARLY_STOPPING, model_name="stopper", checkpoint_every=checkpoint_every
    )

    assert job["status"] == "succeeded", job["error"]
    assert job["stop_reason"].endswith("restored the weights of epoch 1")
    assert (job["epoch"], job["weights_epoch"]) == (4, 1)
    version = client.get("/v1/models/stopper/versions/1").json()
    assert version["epoch"] == 1
    # The version's metrics are epoch 1's history row, not the last epoch's.
    history = client.get(f"/v1/jobs/{job['id']}/history").json()["items"]
    assert version["metrics"] == {k: v for k, v in history[0].items() if k != "epoch"}
    assert version["metrics"]["loss"] != history[-1]["loss"]
    # No snapshot claims to be epoch 4's: epoch 4's weights were not kept.
    assert epochs_of(client, job["id"]) == snapshot_epochs
    snapshots, versions = stored_rows(settings, job["id"])
    at_best = next(s for s in snapshots if s.epoch == 1)
    assert at_best.weights == versions[0].weights
    # With a checkpoint every epoch the one at epoch 1 is kept: a resume point, and the
    # same weights as the version's.
    assert (at_best.checkpoint is not None) == (checkpoint_every == 1)
    by_model = client.post("/v1/models/stopper/predict", json={"inputs": XOR_INPUTS}).json()
    by_job = client.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": XOR_INPUTS, "epoch": 1})
    assert by_job.json()["outputs"] == by_model["outputs"]


def test_a_run_that_trains_every_epoch_holds_the_last_epochs_weights(
    client: TestClient, settings: Settings
) -> None:
    job = run_job(client, settings, {"epochs": 30}, model_name="full", checkpoint_every=50)

    assert (job["status"], job["epoch"], job["weights_epoch"]) == ("succeeded", 30, 30)
    assert client.get("/v1/models/full/versions/1").json()["epoch"] == 30
    assert epochs_of(client, job["id"]) == [30]


@pytest.mark.parametrize(
    ("stopping", "kept"),
    [
        ({}, r"kept the weights from the end of epoch (\d+)"),
        # So steep that the first epoch diverges: the weights kept are the initial ones.
        ({"learning_rate": 1e100}, r"kept the weights from the end of epoch (0)"),
        ({"early_stopping_patience": 50}, r"restored the best weights, of epoch (\d+)"),
    ],
)
def test_after_a_divergence_the_weights_the_error_names_are_a_snapshot(
    client: TestClient, settings: Settings, stopping: dict[str, Any], kept: str
) -> None:
    spec, inputs, targets = diverging_run()
    dataset = {"name": "steep", "inputs": inputs.tolist(), "targets": targets.tolist()}
    training = {**spec.training.to_dict(), **stopping}
    network = spec.network.to_dict()
    job = run_job(
        client, settings, training, dataset, network, preprocessing=PLAIN, checkpoint_every=7
    )

    assert job["status"] == "failed"
    match = re.search(kept, job["error"])
    assert match is not None, job["error"]
    epoch = int(match.group(1))
    assert job["weights_epoch"] == epoch
    snapshot = client.get(f"/v1/jobs/{job['id']}/snapshots/{epoch}")
    assert snapshot.status_code == 200, snapshot.text
    predicted = client.post(
        f"/v1/jobs/{job['id']}/predict", json={"inputs": inputs.tolist(), "epoch": epoch}
    )
    assert predicted.status_code == 200, predicted.text
