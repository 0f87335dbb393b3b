"""Class labels end to end over HTTP, against `backprop serve` as a real process: a dataset
of labels as the user has them (strings, integers or booleans), a job that gives neither
output activation nor loss, and predictions answered in the user's class names."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest

from tests.helpers import Server, job_finished, running_service

# Three well separated blobs, on raw scales far from the unit one: the default
# preprocessing (standardized inputs) is what makes them easy to train.
CENTRES = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]) * [500.0, 3.0] + [1000.0, -7.0]
SPREAD = np.array([25.0, 0.15])
PER_CLASS = 20

# classes as the user names them, output width, the defaults that width gets
CASES: dict[str, tuple[list[Any], int, str, str]] = {
    "strings": (["cat", "dog", "fish"], 3, "softmax", "categorical_crossentropy"),
    "integers": ([3, 7], 1, "sigmoid", "binary_crossentropy"),
    "booleans": ([False, True], 2, "softmax", "categorical_crossentropy"),
}


def blobs(classes: list[Any]) -> tuple[list[list[float]], list[Any]]:
    """`PER_CLASS` rows around each class's centre, the classes interleaved."""
    rng = np.random.default_rng(0)
    inputs, labels = [], []
    for _ in range(PER_CLASS):
        for index, name in enumerate(classes):
            inputs.append((CENTRES[index] + SPREAD * rng.standard_normal(2)).tolist())
            labels.append(name)
    return inputs, labels


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    with running_service(database_url, tmp_path / "serve.log", workers=1) as server:
        yield server


@pytest.mark.parametrize("kind", list(CASES))
def test_labels_train_with_task_defaults_and_predict_class_names(server: Server, kind: str) -> None:
    classes, width, activation, loss = CASES[kind]
    inputs, labels = blobs(classes)
    with httpx2.Client(base_url=server.base_url, timeout=30) as client:
        created = client.post(
            "/v1/datasets", json={"name": kind, "inputs": inputs, "labels": labels}
        )
        assert created.status_code == 201, created.text
        dataset = created.json()
        assert dataset["task"] == "classification"
        assert dataset["classes"] == classes
        assert dataset["class_counts"] == [PER_CLASS] * len(classes)
        assert dataset["feature_names"] is None

        rows = client.get(f"/v1/datasets/{dataset['id']}/rows", params={"limit": 3}).json()
        assert [row["label"] for row in rows["items"]] == labels[:3]
        assert all(row["targets"] is None for row in rows["items"])

        # No output activation, no loss: the dataset's classes choose them.
        submitted = client.post(
            "/v1/jobs",
            json={
                "dataset_id": dataset["id"],
                "model_name": kind,
                "network": {"layers": [2, 8, width], "hidden_activation": "tanh"},
                "training": {
                    "optimizer": "adam",
                    "learning_rate": 0.05,
                    "epochs": 60,
                    "batch_size": 8,
                    "validation_split": 0.25,
                },
            },
        )
        assert submitted.status_code == 202, submitted.text
        spec = submitted.json()["spec"]
        assert spec["network"]["output_activation"] == activation
        assert spec["training"]["loss"] == loss
        assert spec["network"]["init"] == "auto"
        assert spec["preprocessing"] == {"inputs": "standardize", "targets": "none"}

        job = job_finished(client, submitted.json()["id"])
        assert job["status"] == "succeeded", job
        last = client.get(f"/v1/jobs/{job['id']}/history", params={"limit": 1000}).json()
        final = last["items"][-1]
        assert final["val_accuracy"] == 1.0
        assert final["val_f1"] == 1.0
        assert final["mae"] is None and final["r2"] is None

        predicted = client.post(
            f"/v1/models/{kind}/predict", json={"inputs": CENTRES[: len(classes)].tolist()}
        )
        assert predicted.status_code == 200, predicted.text
        assert predicted.json()["labels"] == classes
        assert predicted.json()["classes"] == classes
