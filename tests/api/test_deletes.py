"""Deleting jobs, model versions and models over HTTP: what goes, what stays, what answers
409 and why; jobs trained to the end by an in-process worker."""

import threading
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from service.config import Settings
from service.db import DatasetRow, HistoryRow, ModelVersionRow, SnapshotRow, make_engine
from service.jobs.worker import Worker
from tests.api.test_bad_input import assert_problem
from tests.helpers import XOR_DATASET
from tests.jobs.worker_helpers import worker_settings

XOR_JOB: dict[str, Any] = {
    "network": {"layers": [2, 4, 1], "hidden_activation": "tanh"},
    "training": {"learning_rate": 0.1, "epochs": 20, "seed": 0},
    "checkpoint_every": 5,
}
INPUTS = [[1.0, 1.0], [-1.0, 1.0]]


def train(client: TestClient, settings: Settings, model_name: str | None, **job: Any) -> str:
    """Submit an XOR job (on a dataset of its own unless `dataset_id` is given) and let a
    worker in this process train every queued job; the job's id."""
    dataset_id = (
        job.pop("dataset_id", None) or client.post("/v1/datasets", json=XOR_DATASET).json()["id"]
    )
    body = {**XOR_JOB, "dataset_id": dataset_id, "model_name": model_name, **job}
    job_id: str = client.post("/v1/jobs", json=body).raise_for_status().json()["id"]
    run_worker(settings)
    return job_id


def run_worker(settings: Settings) -> None:
    with Worker(worker_settings(settings.database_url)) as worker:
        worker.run(threading.Event(), until_idle=True)


def rows_of_job(settings: Settings, job_id: str) -> dict[str, int]:
    """History and snapshot rows left in the database for `job_id`."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            return {
                table.__tablename__: connection.scalar(
                    select(func.count()).select_from(table).where(table.job_id == job_id)
                )
                or 0
                for table in (HistoryRow, SnapshotRow)
            }
    finally:
        engine.dispose()


def predict(client: TestClient, name: str, **choice: Any) -> Any:
    return client.post(f"/v1/models/{name}/predict", json={"inputs": INPUTS, **choice})


def test_deleting_a_finished_job_removes_it_with_its_history_and_snapshots(
    client: TestClient, settings: Settings
) -> None:
    job_id = train(client, settings, "xor")
    before = predict(client, "xor", version=1).json()
    assert rows_of_job(settings, job_id) == {"history": 20, "snapshots": 4}
    # A snapshot predicted at its epoch is cached: the delete must forget it too.
    at_epoch = {"inputs": INPUTS, "epoch": 20}
    assert client.post(f"/v1/jobs/{job_id}/predict", json=at_epoch).status_code == 200

    response = client.delete(f"/v1/jobs/{job_id}")

    assert response.status_code == 204 and response.content == b""
    for path in ("", "/history", "/snapshots", "/snapshots/20"):
        assert_problem(client.get(f"/v1/jobs/{job_id}{path}"), 404)
    assert_problem(client.post(f"/v1/jobs/{job_id}/predict", json={"inputs": INPUTS}), 404)
    assert_problem(client.post(f"/v1/jobs/{job_id}/predict", json=at_epoch), 404)
    assert rows_of_job(settings, job_id) == {"history": 0, "snapshots": 0}
    assert_problem(client.delete(f"/v1/jobs/{job_id}"), 404)
    # The version it registered keeps its weights and predicts the same.
    version = client.get("/v1/models/xor/versions/1").json()
    assert version["job_id"] is None and version["epoch"] == 20
    assert predict(client, "xor", version=1).json() == before


def test_a_queued_or_running_job_answers_409_until_cancelled(
    client: TestClient, settings: Settings
) -> None:
    dataset_id = client.post("/v1/datasets", json=XOR_DATASET).json()["id"]
    job_id = client.post("/v1/jobs", json={**XOR_JOB, "dataset_id": dataset_id}).json()["id"]

    refused = assert_problem(client.delete(f"/v1/jobs/{job_id}"), 409)
    assert "queued" in refused["detail"] and "cancel it first" in refused["detail"]
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200

    client.post(f"/v1/jobs/{job_id}/cancel").raise_for_status()
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404


def test_a_dataset_becomes_deletable_once_its_jobs_are_deleted(
    client: TestClient, settings: Settings
) -> None:
    first = train(client, settings, None)
    dataset_id = client.get(f"/v1/jobs/{first}").json()["dataset_id"]
    second = train(client, settings, None, dataset_id=dataset_id)

    assert (
        "2 training jobs"
        in assert_problem(client.delete(f"/v1/datasets/{dataset_id}"), 409)["detail"]
    )
    client.delete(f"/v1/jobs/{first}").raise_for_status()
    assert (
        "1 training job;"
        in assert_problem(client.delete(f"/v1/datasets/{dataset_id}"), 409)["detail"]
    )
    client.delete(f"/v1/jobs/{second}").raise_for_status()

    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    assert_problem(client.get(f"/v1/datasets/{dataset_id}"), 404)
    assert_problem(client.delete(f"/v1/datasets/{dataset_id}"), 404)


def test_a_version_an_alias_points_at_answers_409_naming_the_aliases(
    client: TestClient, settings: Settings
) -> None:
    train(client, settings, "xor")
    for alias in ("staging", "production"):
        client.put(f"/v1/models/xor/aliases/{alias}", json={"version": 1}).raise_for_status()

    refused = assert_problem(client.delete("/v1/models/xor/versions/1"), 409)
    assert "production, staging" in refused["detail"]
    client.delete("/v1/models/xor/aliases/production").raise_for_status()
    assert (
        "aliased as staging;"
        in assert_problem(client.delete("/v1/models/xor/versions/1"), 409)["detail"]
    )
    client.delete("/v1/models/xor/aliases/staging").raise_for_status()

    assert client.delete("/v1/models/xor/versions/1").status_code == 204
    assert_problem(client.delete("/v1/models/xor/versions/1"), 404)
    assert_problem(client.delete("/v1/models/nothing/versions/1"), 404)


def test_a_deleted_version_stops_predicting_at_once_and_latest_falls_back(
    client: TestClient, settings: Settings
) -> None:
    first_job = train(client, settings, "xor")
    train(client, settings, "xor", training={**XOR_JOB["training"], "seed": 1})
    # Loaded and cached by this process: the delete must make the cache forget both.
    assert predict(client, "xor", version=2).status_code == 200
    assert predict(client, "xor").json()["model"]["version"] == 2
    by_version_1 = predict(client, "xor", version=1).json()

    assert client.delete("/v1/models/xor/versions/2").status_code == 204

    assert_problem(predict(client, "xor", version=2), 404)
    assert_problem(client.get("/v1/models/xor/versions/2"), 404)
    latest = predict(client, "xor").json()
    assert latest["model"]["version"] == 1 and latest["outputs"] == by_version_1["outputs"]
    model = client.get("/v1/models/xor").json()
    assert model["latest_version"] == 1
    versions = client.get("/v1/models/xor/versions").json()["items"]
    assert [v["version"] for v in versions] == [1] and versions[0]["job_id"] == first_job
    # The job that trained version 2 keeps its history and snapshots.
    second_job = client.get("/v1/jobs", params={"model_name": "xor", "limit": 1}).json()
    assert client.get(f"/v1/jobs/{second_job['items'][0]['id']}/snapshots").json()["items"]


def test_a_model_with_versions_is_deleted_only_with_force(
    client: TestClient, settings: Settings
) -> None:
    train(client, settings, "xor")
    client.put("/v1/models/xor/aliases/production", json={"version": 1}).raise_for_status()
    assert predict(client, "xor", alias="production").status_code == 200

    refused = assert_problem(client.delete("/v1/models/xor"), 409)
    assert "1 version;" in refused["detail"] and "force=true" in refused["detail"]
    assert predict(client, "xor").status_code == 200

    assert client.delete("/v1/models/xor", params={"force": "true"}).status_code == 204
    for choice in ({}, {"version": 1}, {"alias": "production"}):
        assert_problem(predict(client, "xor", **choice), 404)
    assert_problem(client.get("/v1/models/xor"), 404)
    assert_problem(client.delete("/v1/models/xor", params={"force": "true"}), 404)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(ModelVersionRow)) == 0
    finally:
        engine.dispose()


def test_a_model_without_versions_is_deleted_without_force(
    client: TestClient, settings: Settings
) -> None:
    train(client, settings, "xor")
    client.delete("/v1/models/xor/versions/1").raise_for_status()
    assert client.get("/v1/models/xor").json()["latest_version"] is None

    assert client.delete("/v1/models/xor").status_code == 204
    assert_problem(client.get("/v1/models/xor"), 404)


def test_a_deleted_versions_number_is_never_given_again(
    client: TestClient, settings: Settings
) -> None:
    train(client, settings, "xor")
    train(client, settings, "xor", training={**XOR_JOB["training"], "seed": 1})
    deleted = predict(client, "xor", version=2).json()["outputs"]
    assert client.delete("/v1/models/xor/versions/2").status_code == 204

    third_job = train(client, settings, "xor", training={**XOR_JOB["training"], "seed": 2})

    assert client.get(f"/v1/jobs/{third_job}").json()["model_version"] == 3
    assert_problem(predict(client, "xor", version=2), 404)
    latest = predict(client, "xor").json()
    assert latest["model"]["version"] == 3 and latest["outputs"] != deleted
    assert [v["version"] for v in client.get("/v1/models/xor/versions").json()["items"]] == [3, 1]


def test_a_job_created_while_its_dataset_is_being_deleted_is_a_404_not_a_500(
    client: TestClient, settings: Settings
) -> None:
    dataset_id = client.post("/v1/datasets", json=XOR_DATASET).json()["id"]
    answers: list[Any] = []
    engine = make_engine(settings.database_url)
    try:
        # Another client's delete holds the dataset's row while the job is being created.
        with engine.begin() as connection:
            connection.execute(
                select(DatasetRow.id).where(DatasetRow.id == dataset_id).with_for_update()
            )
            connection.execute(delete(DatasetRow).where(DatasetRow.id == dataset_id))
            creating = threading.Thread(
                target=lambda: answers.append(
                    client.post("/v1/jobs", json={**XOR_JOB, "dataset_id": dataset_id})
                )
            )
            creating.start()
            creating.join(timeout=1.0)
    finally:
        engine.dispose()
    creating.join(timeout=30)

    assert_problem(answers[0], 404)
    assert client.get("/v1/jobs").json()["items"] == []
