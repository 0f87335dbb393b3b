"""Datasets, jobs and models through the API, with training rows written as a worker would."""

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from service.config import Settings
from service.core import RunSpec, Trainer
from service.core.datasets import generate
from service.db import SnapshotRow, make_engine, make_session_factory, registry
from service.db import jobs as job_queries
from tests.helpers import XOR_DATASET

MOONS_SPEC = {
    "network": {
        "layers": [2, 8, 1],
        "hidden_activation": "tanh",
        "output_activation": "sigmoid",
        "init": "xavier_uniform",
    },
    "training": {
        "loss": "binary_crossentropy",
        "optimizer": "adam",
        "learning_rate": 0.05,
        "epochs": 30,
        "batch_size": 16,
    },
}


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def train_and_register(session: Session, client: TestClient, model_name: str) -> dict[str, Any]:
    """Submit a job through the API, then train and store it as a worker does."""
    dataset = client.post(
        "/v1/datasets",
        json={"name": "moons", "generator": {"kind": "moons", "n_samples": 100, "noise": 0.1}},
    ).json()
    job = client.post(
        "/v1/jobs",
        json={
            "dataset_id": dataset["id"],
            "model_name": model_name,
            **MOONS_SPEC,
            "checkpoint_every": 10,
        },
    ).json()
    inputs, targets = generate("moons", 100, 0.1)
    trainer = Trainer(RunSpec.from_dict(MOONS_SPEC), inputs, targets)
    records = []
    # Up to each snapshot epoch at a time, as the worker trains (the compiled engine trains
    # many epochs per call, so the weights are those of the last epoch a call trained).
    while not trainer.done:
        records += trainer.train_epochs(10 - trainer.epoch % 10).records()
        if trainer.epoch % 10 == 0:
            session.add(
                SnapshotRow(
                    job_id=job["id"], epoch=trainer.epoch, weights=trainer.model().to_bytes()
                )
            )
    job_queries.upsert_history(session, job["id"], records)
    registry.register_version(
        session, model_name, job["id"], trainer.epoch, trainer.model().to_bytes()
    )
    session.commit()
    return {"job": job, "trainer": trainer, "inputs": inputs}


def test_csv_upload_creates_a_dataset_whose_last_columns_are_targets(client: TestClient) -> None:
    csv = b"x1,x2,y\n1,1,1\n-1,1,0\n1,-1,0\n-1,-1,1\n"

    response = client.post(
        "/v1/datasets/csv",
        files={"file": ("xor.csv", csv, "text/csv")},
        data={"name": "xor", "targets": "1"},
    )

    assert response.status_code == 201, response.text
    dataset = response.json()
    assert (dataset["n_samples"], dataset["n_features"], dataset["n_targets"]) == (4, 2, 1)
    rows = client.get(f"/v1/datasets/{dataset['id']}/rows").json()
    assert rows["items"] == [
        {"index": 0, "inputs": [1, 1], "targets": [1], "label": None},
        {"index": 1, "inputs": [-1, 1], "targets": [0], "label": None},
        {"index": 2, "inputs": [1, -1], "targets": [0], "label": None},
        {"index": 3, "inputs": [-1, -1], "targets": [1], "label": None},
    ]


def test_csv_upload_with_text_in_a_row_names_the_row(client: TestClient) -> None:
    csv = b"1,1,1\n-1,oops,0\n"

    response = client.post(
        "/v1/datasets/csv", files={"file": ("bad.csv", csv, "text/csv")}, data={"name": "bad"}
    )

    assert response.status_code == 422
    assert "row 2" in response.json()["detail"]


def test_datasets_are_listed_newest_first_across_pages(client: TestClient) -> None:
    ids = [
        client.post("/v1/datasets", json={**XOR_DATASET, "name": f"d{i}"}).json()["id"]
        for i in range(5)
    ]

    first = client.get("/v1/datasets", params={"limit": 2}).json()
    second = client.get("/v1/datasets", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = client.get("/v1/datasets", params={"limit": 2, "cursor": second["next_cursor"]}).json()

    listed = [d["id"] for page in (first, second, third) for d in page["items"]]
    assert listed == ids[::-1]
    assert third["next_cursor"] is None


def test_a_datasets_rows_are_paged_in_order_each_exactly_once(client: TestClient) -> None:
    inputs = [[float(i), -float(i)] for i in range(7)]
    targets = [[float(i % 2)] for i in range(7)]
    dataset = client.post(
        "/v1/datasets", json={"name": "seven", "inputs": inputs, "targets": targets}
    ).json()
    path = f"/v1/datasets/{dataset['id']}/rows"

    pages = [client.get(path, params={"limit": 3}).json()]
    while pages[-1]["next_cursor"] is not None and len(pages) < 5:
        pages.append(
            client.get(path, params={"limit": 3, "cursor": pages[-1]["next_cursor"]}).json()
        )

    assert [len(page["items"]) for page in pages] == [3, 3, 1]
    rows = [row for page in pages for row in page["items"]]
    assert [row["index"] for row in rows] == list(range(7))
    assert [row["inputs"] for row in rows] == inputs
    assert [row["targets"] for row in rows] == targets


def test_datasets_rows_refuse_a_bad_cursor_and_a_limit_out_of_bounds(
    client: TestClient,
) -> None:
    path = f"/v1/datasets/{client.post('/v1/datasets', json=XOR_DATASET).json()['id']}/rows"

    for params, field in (
        ({"cursor": "garbage"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
    ):
        response = client.get(path, params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["errors"][0]["loc"] == ["query", field]


def test_a_dataset_used_by_a_job_cannot_be_deleted_until_unused(client: TestClient) -> None:
    used = client.post("/v1/datasets", json=XOR_DATASET).json()["id"]
    unused = client.post("/v1/datasets", json=XOR_DATASET).json()["id"]
    client.post("/v1/jobs", json={"dataset_id": used, "network": {"layers": [2, 2, 1]}})

    assert client.delete(f"/v1/datasets/{used}").status_code == 409
    assert client.delete(f"/v1/datasets/{unused}").status_code == 204
    assert client.get(f"/v1/datasets/{unused}").status_code == 404


def test_jobs_filter_by_status_and_model_and_page(client: TestClient) -> None:
    dataset = client.post("/v1/datasets", json=XOR_DATASET).json()["id"]
    jobs = [
        client.post(
            "/v1/jobs",
            json={"dataset_id": dataset, "model_name": name, "network": {"layers": [2, 2, 1]}},
        ).json()
        for name in ("a", "b", "a", "a")
    ]
    client.post(f"/v1/jobs/{jobs[0]['id']}/cancel")

    by_model = client.get("/v1/jobs", params={"model_name": "a", "limit": 2}).json()
    rest = client.get(
        "/v1/jobs", params={"model_name": "a", "limit": 2, "cursor": by_model["next_cursor"]}
    ).json()
    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}).json()["items"]

    assert [j["id"] for j in by_model["items"] + rest["items"]] == [
        jobs[3]["id"],
        jobs[2]["id"],
        jobs[0]["id"],
    ]
    assert [j["id"] for j in cancelled] == [jobs[0]["id"]]
    assert client.get("/v1/jobs", params={"status": "exploded"}).status_code == 422


def test_history_pages_and_downsamples(client: TestClient, session: Session) -> None:
    trained = train_and_register(session, client, "moons")
    job_id = trained["job"]["id"]

    first = client.get(f"/v1/jobs/{job_id}/history", params={"limit": 20}).json()
    rest = client.get(
        f"/v1/jobs/{job_id}/history", params={"limit": 20, "cursor": first["next_cursor"]}
    ).json()
    sampled = client.get(f"/v1/jobs/{job_id}/history", params={"max_points": 5}).json()["items"]

    assert [p["epoch"] for p in first["items"] + rest["items"]] == list(range(1, 31))
    assert rest["next_cursor"] is None
    assert [p["epoch"] for p in sampled] == [1, 9, 17, 25, 30]
    assert all(p["accuracy"] is not None for p in first["items"])
    # A classifier without a validation part: no validation scores, no regression ones.
    new_metrics = ("val_precision", "val_recall", "val_f1", "mae", "r2", "val_mae", "val_r2")
    assert all(p[name] is None for p in first["items"] for name in new_metrics)


@pytest.mark.parametrize(
    ("generator", "task", "classes", "counts"),
    [
        ({"kind": "xor", "n_samples": 8}, "classification", [0, 1], [4, 4]),
        ({"kind": "spiral", "n_samples": 9, "n_classes": 3}, "classification", [0, 1, 2], [3] * 3),
        ({"kind": "sine", "n_samples": 5}, "regression", None, None),
    ],
)
def test_generated_datasets_of_classes_are_labelled_and_sine_is_regression(
    client: TestClient,
    generator: dict[str, Any],
    task: str,
    classes: list[int] | None,
    counts: list[int] | None,
) -> None:
    created = client.post("/v1/datasets", json={"name": "g", "generator": generator})

    assert created.status_code == 201, created.text
    dataset = created.json()
    assert (dataset["task"], dataset["classes"], dataset["class_counts"]) == (task, classes, counts)
    assert dataset["feature_names"] is None
    rows = client.get(f"/v1/datasets/{dataset['id']}/rows").json()["items"]
    if classes is None:
        assert all(row["label"] is None and len(row["targets"]) == 1 for row in rows)
    else:
        assert all(row["targets"] is None and row["label"] in classes for row in rows)


def test_a_job_stores_its_whole_spec_with_the_defaults_its_task_chose(client: TestClient) -> None:
    labelled = client.post("/v1/datasets", json=XOR_DATASET).json()["id"]
    regression = client.post(
        "/v1/datasets", json={"name": "sine", "generator": {"kind": "sine", "n_samples": 20}}
    ).json()["id"]

    def submitted_spec(dataset_id: str, network: dict[str, Any]) -> dict[str, Any]:
        response = client.post("/v1/jobs", json={"dataset_id": dataset_id, "network": network})
        assert response.status_code == 202, response.text
        spec: dict[str, Any] = response.json()["spec"]
        return spec

    binary = submitted_spec(labelled, {"layers": [2, 4, 1]})
    two_units = submitted_spec(labelled, {"layers": [2, 4, 2]})
    values = submitted_spec(regression, {"layers": [1, 4, 1]})
    chosen = submitted_spec(labelled, {"layers": [2, 4, 1], "output_activation": "identity"})

    assert RunSpec.from_dict(binary).to_dict() == binary
    assert binary["preprocessing"] == {"inputs": "standardize", "targets": "none"}
    assert binary["network"]["init"] == "auto"
    assert (binary["network"]["output_activation"], binary["training"]["loss"]) == (
        "sigmoid",
        "binary_crossentropy",
    )
    assert (two_units["network"]["output_activation"], two_units["training"]["loss"]) == (
        "softmax",
        "categorical_crossentropy",
    )
    assert (values["network"]["output_activation"], values["training"]["loss"]) == (
        "identity",
        "mse",
    )
    # What the client gave is kept; only what it left out follows the task.
    assert (chosen["network"]["output_activation"], chosen["training"]["loss"]) == (
        "identity",
        "mse",
    )


def test_a_classifier_predicts_outputs_probabilities_and_labels(
    client: TestClient, session: Session
) -> None:
    trained = train_and_register(session, client, "moons")
    inputs = trained["inputs"][:10]

    response = client.post("/v1/models/moons/predict", json={"inputs": inputs.tolist()})

    assert response.status_code == 200, response.text
    body = response.json()
    expected = trained["trainer"].model().predict(inputs)
    assert np.allclose(body["outputs"], expected, rtol=0, atol=1e-12)
    assert body["probabilities"] == body["outputs"]
    assert body["labels"] == (expected >= 0.5).astype(int).tolist()
    assert body["model"] == {"name": "moons", "version": 1}


def test_versions_and_aliases_select_the_model_that_predicts(
    client: TestClient, session: Session
) -> None:
    first = train_and_register(session, client, "moons")
    second = train_and_register(session, client, "moons")
    inputs = first["inputs"][:3].tolist()

    assert client.put("/v1/models/moons/aliases/production", json={"version": 1}).status_code == 200
    model = client.get("/v1/models/moons").json()
    by_alias = client.post(
        "/v1/models/moons/predict", json={"inputs": inputs, "alias": "production"}
    ).json()
    latest = client.post("/v1/models/moons/predict", json={"inputs": inputs}).json()
    versions = client.get("/v1/models/moons/versions").json()["items"]

    assert model["latest_version"] == 2 and model["aliases"] == {"production": 1}
    assert by_alias["model"]["version"] == 1 and latest["model"]["version"] == 2
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["job_id"] == second["job"]["id"] and versions[0]["network"]["layers"] == [
        2,
        8,
        1,
    ]
    assert client.put("/v1/models/moons/aliases/production", json={"version": 9}).status_code == 404
    assert client.delete("/v1/models/moons/aliases/production").status_code == 204
    assert (
        client.post(
            "/v1/models/moons/predict", json={"inputs": inputs, "alias": "production"}
        ).status_code
        == 404
    )


def test_predict_at_a_snapshot_epoch_uses_that_epochs_weights(
    client: TestClient, session: Session
) -> None:
    trained = train_and_register(session, client, "moons")
    job_id, inputs = trained["job"]["id"], trained["inputs"][:4].tolist()

    early = client.post(f"/v1/jobs/{job_id}/predict", json={"inputs": inputs, "epoch": 10}).json()
    latest = client.post(f"/v1/jobs/{job_id}/predict", json={"inputs": inputs}).json()
    missing = client.post(f"/v1/jobs/{job_id}/predict", json={"inputs": inputs, "epoch": 11})

    assert (early["epoch"], latest["epoch"]) == (10, 30)
    assert early["outputs"] != latest["outputs"]
    assert missing.status_code == 404 and "10, 20, 30" in missing.json()["detail"]


def test_predict_with_inputs_of_the_wrong_width_names_the_field(
    client: TestClient, session: Session
) -> None:
    train_and_register(session, client, "moons")

    response = client.post("/v1/models/moons/predict", json={"inputs": [[1, 2, 3]]})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "inputs"]


def predicted_versions_until(
    client: TestClient, body: dict[str, Any], done: Any, seconds: float = 5.0
) -> list[Any]:
    """Predict repeatedly until `done(response)`; the model versions (or statuses) seen."""
    seen: list[Any] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = client.post("/v1/models/moons/predict", json=body)
        seen.append(
            response.json()["model"]["version"] if response.is_success else response.status_code
        )
        if done(response):
            break
        time.sleep(0.05)
    return seen


def test_a_version_registered_by_another_process_is_served_within_seconds(
    client: TestClient, session: Session
) -> None:
    inputs = train_and_register(session, client, "moons")["inputs"][:2].tolist()
    assert (
        client.post("/v1/models/moons/predict", json={"inputs": inputs}).json()["model"]["version"]
        == 1
    )

    # Registered straight in the database, as a worker process does.
    train_and_register(session, client, "moons")
    seen = predicted_versions_until(
        client, {"inputs": inputs}, lambda r: r.json()["model"]["version"] == 2
    )

    assert seen[-1] == 2 and set(seen) <= {1, 2}


def test_an_alias_removed_by_another_process_stops_resolving_within_seconds(
    client: TestClient, session: Session
) -> None:
    inputs = train_and_register(session, client, "moons")["inputs"][:2].tolist()
    client.put("/v1/models/moons/aliases/production", json={"version": 1})
    body = {"inputs": inputs, "alias": "production"}
    assert client.post("/v1/models/moons/predict", json=body).status_code == 200

    registry.delete_alias(session, "moons", "production")
    session.commit()
    seen = predicted_versions_until(client, body, lambda r: r.status_code == 404)

    assert seen[-1] == 404 and set(seen) <= {1, 404}
