"""Warm starts (`initial_model`, `initial_job`) and retries over HTTP, trained by a real
worker: where a job starts, what it reuses, and that a continued run ends exactly where an
uninterrupted one does."""

import threading
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.config import Settings
from service.core import Model
from service.core.datasets import generate
from service.db import ModelVersionRow, make_engine, make_session_factory
from service.jobs.worker import Worker
from tests.jobs.worker_helpers import wait_for, worker_settings

NETWORK = {"layers": [2, 8, 1], "hidden_activation": "tanh", "output_activation": "sigmoid"}
TRAINING = {"loss": "binary_crossentropy", "optimizer": "adam", "learning_rate": 0.02}


def inline_moons(seed: int, scale: float, shift: float) -> dict[str, Any]:
    """Moons far from unit scale, each set at its own, so fitted statistics would differ."""
    x, t = generate("moons", 120, 0.15, seed)
    return {"name": f"moons-{seed}", "inputs": (x * scale + shift).tolist(), "targets": t.tolist()}


def add_dataset(client: TestClient, body: dict[str, Any]) -> str:
    response = client.post("/v1/datasets", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def submit(client: TestClient, dataset_id: str, **fields: Any) -> dict[str, Any]:
    body = {"dataset_id": dataset_id, "network": NETWORK, "training": TRAINING, **fields}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def train_all(settings: Settings) -> None:
    with Worker(worker_settings(settings.database_url)) as worker:
        worker.run(threading.Event(), until_idle=True)


def job_of(client: TestClient, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
    return job


def loss_of(client: TestClient, model: str, version: int, dataset_id: str) -> float:
    response = client.post(
        f"/v1/models/{model}/evaluate", json={"dataset_id": dataset_id, "version": version}
    )
    assert response.status_code == 200, response.text
    loss: float = response.json()["loss"]
    return loss


def version_model(settings: Settings, name: str, version: int) -> Model:
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            row = session.scalars(
                select(ModelVersionRow).where(
                    ModelVersionRow.model_name == name, ModelVersionRow.version == version
                )
            ).one()
            return Model.from_bytes(row.weights)
    finally:
        engine.dispose()


@pytest.fixture
def base(client: TestClient, settings: Settings) -> dict[str, Any]:
    """Model `base` v1: a few epochs on one moons set (so there is loss left to lose)."""
    dataset_id = add_dataset(client, inline_moons(0, 50, 3))
    job = submit(client, dataset_id, model_name="base", training={**TRAINING, "epochs": 3})
    train_all(settings)
    assert job_of(client, job["id"])["status"] == "succeeded"
    return {"job": job, "dataset_id": dataset_id}


def test_a_warm_start_begins_at_the_model_reuses_its_statistics_and_trains_it_further(
    client: TestClient, settings: Settings, base: dict[str, Any]
) -> None:
    other = add_dataset(client, inline_moons(1, 20, -7))
    created = client.post(
        "/v1/jobs",
        json={
            "dataset_id": other,
            "model_name": "warm",
            "network": NETWORK,
            # Full batch: the first epoch's loss is the loss of the weights it starts from.
            "training": {**TRAINING, "epochs": 40, "batch_size": None},
            "initial_model": {"name": "base"},
        },
    )
    assert created.status_code == 202, created.text
    assert created.headers["location"] == f"/v1/jobs/{created.json()['id']}"
    assert created.json()["initial_model"] == {"name": "base", "version": 1}
    train_all(settings)

    job = job_of(client, created.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["initial_model"] == {"name": "base", "version": 1}
    assert job["initial_job"] is None
    first = client.get(f"/v1/jobs/{job['id']}/history").json()["items"][0]
    start_loss = loss_of(client, "base", 1, other)
    assert first["loss"] == pytest.approx(start_loss, rel=1e-9)
    assert loss_of(client, "warm", 1, other) < start_loss
    started, ended = version_model(settings, "base", 1), version_model(settings, "warm", 1)
    assert started.preprocessing is not None and ended.preprocessing is not None
    assert ended.preprocessing.same_as(started.preprocessing)


def test_a_warm_start_from_a_job_snapshot_names_the_epoch_it_took(
    client: TestClient, settings: Settings, base: dict[str, Any]
) -> None:
    job = submit(
        client,
        base["dataset_id"],
        training={**TRAINING, "epochs": 2},
        initial_job={"id": base["job"]["id"]},
    )

    assert job["initial_job"] == {"id": base["job"]["id"], "epoch": 3}
    train_all(settings)
    assert job_of(client, job["id"])["status"] == "succeeded"


@pytest.mark.parametrize(
    ("start", "status", "loc"),
    [
        ({"initial_model": {"name": "nobody"}}, 404, None),
        ({"initial_model": {"name": "base", "version": 9}}, 404, None),
        ({"initial_model": {"name": "base", "alias": "prod"}}, 404, None),
        ({"initial_job": {"id": "0" * 32}}, 404, None),
        ({"initial_job": {"id": "JOB", "epoch": 2}}, 404, None),
        (
            {"initial_model": {"name": "base"}, "initial_job": {"id": "JOB"}},
            422,
            ["body", "initial_job"],
        ),
        (
            {"initial_model": {"name": "base"}, "preprocessing": {"inputs": "minmax"}},
            422,
            ["body", "preprocessing", "inputs"],
        ),
    ],
)
def test_a_warm_start_from_nothing_or_twice_is_refused_and_writes_nothing(
    client: TestClient,
    base: dict[str, Any],
    start: dict[str, Any],
    status: int,
    loc: list[str] | None,
) -> None:
    if start.get("initial_job", {}).get("id") == "JOB":
        start = {**start, "initial_job": {**start["initial_job"], "id": base["job"]["id"]}}
    jobs_before = len(client.get("/v1/jobs").json()["items"])
    body = {"dataset_id": base["dataset_id"], "network": NETWORK, "training": TRAINING, **start}

    response = client.post("/v1/jobs", json=body)

    assert response.status_code == status, response.text
    if loc is not None:
        assert response.json()["errors"][0]["loc"] == loc
    assert len(client.get("/v1/jobs").json()["items"]) == jobs_before


def test_a_warm_start_onto_other_layers_is_a_422_naming_both_shapes(
    client: TestClient, base: dict[str, Any]
) -> None:
    response = client.post(
        "/v1/jobs",
        json={
            "dataset_id": base["dataset_id"],
            "network": {**NETWORK, "layers": [2, 4, 1]},
            "initial_model": {"name": "base"},
        },
    )

    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["loc"] == ["body", "initial_model"]
    assert error["msg"] == "the model has layers [2, 8, 1], the job's network has [2, 4, 1]"


def test_a_warm_start_onto_a_dataset_of_other_classes_is_refused(
    client: TestClient, settings: Settings
) -> None:
    x = generate("gaussian", 40, 0.5, 0, 2)[0]
    labels = ["cat", "dog"] * 20
    pets = add_dataset(client, {"name": "pets", "inputs": x.tolist(), "labels": labels})
    cars = add_dataset(
        client, {"name": "cars", "inputs": x.tolist(), "labels": ["bus", "van"] * 20}
    )
    client.post(
        "/v1/jobs",
        json={
            "dataset_id": pets,
            "model_name": "pets",
            "network": {"layers": [2, 4, 2]},
            "training": {"epochs": 2},
        },
    )
    train_all(settings)

    response = client.post(
        "/v1/jobs",
        json={
            "dataset_id": cars,
            "network": {"layers": [2, 4, 2]},
            "initial_model": {"name": "pets"},
        },
    )

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0] == {
        "loc": ["body", "initial_model"],
        "msg": "the model answers classes ['cat', 'dog'], the data has classes ['bus', 'van']",
    }


def test_a_queued_job_cannot_be_retried_and_an_unknown_one_is_not_found(
    client: TestClient, base: dict[str, Any]
) -> None:
    job = submit(client, base["dataset_id"])

    queued = client.post(f"/v1/jobs/{job['id']}/retry")
    missing = client.post(f"/v1/jobs/{'0' * 32}/retry")

    assert queued.status_code == 409, queued.text
    assert "is queued" in queued.json()["detail"]
    assert missing.status_code == 404


# Long enough epochs (3000 samples, one at a time) to cancel a run in its middle.
SLOW = {"name": "moons", "generator": {"kind": "moons", "n_samples": 3000, "noise": 0.2}}
# The NumPy engine, so the job is still running when the test cancels it (the compiled
# engine trains these 60 epochs in well under a second).
SLOW_TRAINING = {
    "learning_rate": 0.01,
    "epochs": 60,
    "batch_size": 1,
    "seed": 3,
    "engine": "numpy",
}


def last_weights(client: TestClient, job: dict[str, Any]) -> Any:
    return client.get(f"/v1/jobs/{job['id']}/snapshots/{job['weights_epoch']}").json()["layers"]


def test_retrying_a_cancelled_job_from_its_checkpoint_ends_as_an_uninterrupted_run(
    client: TestClient, settings: Settings
) -> None:
    dataset_id = add_dataset(client, SLOW)
    body = {"training": SLOW_TRAINING, "checkpoint_every": 5, "model_name": "slow"}
    interrupted = submit(client, dataset_id, **body)
    worker = threading.Thread(target=train_all, args=(settings,))
    worker.start()
    try:
        wait_for(lambda: job_of(client, interrupted["id"])["epoch"] >= 6, 60, "epoch 6")
        assert client.post(f"/v1/jobs/{interrupted['id']}/cancel").status_code == 200
    finally:
        worker.join()
    cancelled = job_of(client, interrupted["id"])
    assert cancelled["status"] == "cancelled" and cancelled["epoch"] < 60

    response = client.post(f"/v1/jobs/{interrupted['id']}/retry", json={"resume": "checkpoint"})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    retried = response.json()
    assert (retried["retry_of"], retried["epoch"]) == (interrupted["id"], cancelled["epoch"])
    uninterrupted = submit(client, dataset_id, **body)
    train_all(settings)

    continued, whole = job_of(client, retried["id"]), job_of(client, uninterrupted["id"])
    assert (continued["status"], continued["epoch"]) == ("succeeded", 60)
    history = client.get(f"/v1/jobs/{retried['id']}/history").json()["items"]
    assert [point["epoch"] for point in history] == list(range(1, 61))
    assert last_weights(client, continued) == last_weights(client, whole)
    assert continued["model_version"] is not None


def test_retrying_a_succeeded_job_trains_the_extra_epochs_from_where_it_ended(
    client: TestClient, settings: Settings, base: dict[str, Any]
) -> None:
    old = base["job"]["id"]

    more = client.post(f"/v1/jobs/{old}/retry", json={"epochs": 8, "resume": "checkpoint"})
    final = client.post(f"/v1/jobs/{old}/retry", json={"epochs": 5, "resume": "final"})
    again = client.post(f"/v1/jobs/{old}/retry")
    too_few = client.post(f"/v1/jobs/{old}/retry", json={"resume": "checkpoint"})
    train_all(settings)

    assert too_few.status_code == 422, too_few.text
    assert too_few.json()["errors"][0]["loc"] == ["body", "epochs"]
    continued = job_of(client, more.json()["id"])
    assert (continued["status"], continued["epoch"], continued["epochs_total"]) == (
        "succeeded",
        8,
        8,
    )
    history = client.get(f"/v1/jobs/{continued['id']}/history").json()["items"]
    old_history = client.get(f"/v1/jobs/{old}/history").json()["items"]
    assert history[:3] == old_history
    from_final = job_of(client, final.json()["id"])
    assert from_final["initial_job"] == {"id": old, "epoch": 3}
    assert (from_final["status"], from_final["epoch"]) == ("succeeded", 5)
    repeated = job_of(client, again.json()["id"])
    assert repeated["spec"] == job_of(client, old)["spec"]
    assert repeated["retry_of"] == old and repeated["model_name"] == "base"
    # The plain retry trains what the first run trained, to the same weights.
    assert np.array_equal(
        version_model(settings, "base", repeated["model_version"]).parameters.flat,
        version_model(settings, "base", 1).parameters.flat,
    )
