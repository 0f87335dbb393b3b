"""Grid predictions over HTTP: every point of the grid answers what predict answers for
it (classifiers with class names, regression in raw units, a job at each snapshot epoch),
default ranges cover the training data (or say where else they came from), and the
limits and bad ranges are refused with the field at fault named."""

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.schemas.grids import MAX_RESOLUTION
from service.config import Settings
from service.core.datasets import generate
from tests.api.test_weights_epoch import run_job

MOONS_INPUTS, MOONS_CLASSES = generate("moons", 40, 0.1, 0)
# Class names, not indices: the answer must carry them as predict does.
MOONS = {
    "name": "moons",
    "inputs": MOONS_INPUTS.tolist(),
    "labels": [["north", "south"][int(i)] for i in MOONS_CLASSES[:, 0]],
}
CLASSIFIER = {"layers": [2, 6, 2], "output_activation": "softmax"}
CLASSIFIER_TRAINING = {
    "loss": "categorical_crossentropy",
    "optimizer": "adam",
    "learning_rate": 0.05,
    "epochs": 6,
}
# Raw units far from 1, so the model's scaling is at work inside every point's prediction.
SURFACE_INPUTS = np.array([[x, y] for x in (-3.0, 0.0, 4.0) for y in (10.0, 20.0, 50.0)])
SURFACE = {
    "name": "surface",
    "inputs": SURFACE_INPUTS.tolist(),
    "targets": [[100 * x - y] for x, y in SURFACE_INPUTS],
}
REGRESSION = {"layers": [2, 4, 1], "hidden_activation": "tanh"}
REGRESSION_TRAINING = {"learning_rate": 0.05, "epochs": 5}


def trained_job(
    client: TestClient,
    settings: Settings,
    dataset: dict[str, Any],
    network: dict[str, Any],
    training: dict[str, Any],
    **fields: Any,
) -> dict[str, Any]:
    job = run_job(client, settings, training, dataset, network, **fields)
    assert job["status"] == "succeeded", job
    return job


def grid_rows(grid: dict[str, Any]) -> list[list[float]]:
    """The grid's points as predict rows, in the grid's order: row by row of y."""
    return [[x, y] for y in grid["y"] for x in grid["x"]]


def as_grid(values: list[list[float]], resolution: int) -> list[list[list[float]]]:
    return [values[i * resolution : (i + 1) * resolution] for i in range(resolution)]


def problem_locations(response: Any) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["errors"]]


def test_a_classifier_grid_is_the_batch_prediction_of_its_points(
    client: TestClient, settings: Settings
) -> None:
    trained_job(client, settings, MOONS, CLASSIFIER, CLASSIFIER_TRAINING, model_name="moons-net")

    response = client.post("/v1/models/moons-net/grid", json={"resolution": 7})
    assert response.status_code == 200, response.text
    grid = response.json()
    predicted = client.post("/v1/models/moons-net/predict", json={"inputs": grid_rows(grid)})
    prediction = predicted.json()

    assert grid["resolution"] == 7
    assert len(grid["x"]) == len(grid["y"]) == 7
    assert grid["x"] == sorted(grid["x"]) and grid["y"] == sorted(grid["y"])
    assert grid["outputs"] == as_grid(prediction["outputs"], 7)
    assert grid["probabilities"] == as_grid(prediction["probabilities"], 7)
    assert grid["classes"] == prediction["classes"] == ["north", "south"]
    assert grid["model"] == prediction["model"] == {"name": "moons-net", "version": 1}
    # Row i is y[i]: the point (x[6], y[0]) is the 7th row of the batch.
    single = client.post(
        "/v1/models/moons-net/predict", json={"inputs": [[grid["x"][6], grid["y"][0]]]}
    ).json()
    assert grid["outputs"][0][6] == pytest.approx(single["outputs"][0], abs=1e-12)


def test_a_regression_grid_answers_raw_units_and_no_probabilities(
    client: TestClient, settings: Settings
) -> None:
    trained_job(
        client,
        settings,
        SURFACE,
        REGRESSION,
        REGRESSION_TRAINING,
        model_name="surface-net",
        preprocessing={"inputs": "standardize", "targets": "standardize"},
    )
    area = {"x_range": [-3, 4], "y_range": [10, 50], "resolution": 5}

    grid = client.post("/v1/models/surface-net/grid", json={**area, "version": 1}).json()
    prediction = client.post(
        "/v1/models/surface-net/predict", json={"inputs": grid_rows(grid), "version": 1}
    ).json()

    assert grid["x"] == [-3.0, -1.25, 0.5, 2.25, 4.0]
    assert grid["y"] == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert grid["x_range"] == [-3.0, 4.0] and grid["y_range"] == [10.0, 50.0]
    assert grid["range_source"] == "request"
    assert grid["outputs"] == as_grid(prediction["outputs"], 5)
    assert grid["probabilities"] is None and grid["classes"] is None
    # Raw units: the targets span hundreds, the network's own outputs about one.
    assert np.ptp(np.array(grid["outputs"])) > 50


def test_a_job_grid_at_two_epochs_differs_and_each_is_the_job_predict_at_that_epoch(
    client: TestClient, settings: Settings
) -> None:
    job = trained_job(client, settings, MOONS, CLASSIFIER, CLASSIFIER_TRAINING, checkpoint_every=1)
    path = f"/v1/jobs/{job['id']}"

    grids = {}
    for epoch in (1, 6):
        grid = client.post(f"{path}/grid", json={"epoch": epoch, "resolution": 6}).json()
        prediction = client.post(
            f"{path}/predict", json={"inputs": grid_rows(grid), "epoch": epoch}
        ).json()
        assert grid["outputs"] == as_grid(prediction["outputs"], 6)
        assert grid["probabilities"] == as_grid(prediction["probabilities"], 6)
        assert grid["job_id"] == job["id"] and grid["epoch"] == epoch
        assert "model" not in grid
        grids[epoch] = grid

    assert grids[1]["outputs"] != grids[6]["outputs"]
    # The same grid at every epoch: frames of one picture.
    assert (grids[1]["x"], grids[1]["y"]) == (grids[6]["x"], grids[6]["y"])
    latest = client.post(f"{path}/grid", json={"resolution": 6}).json()
    assert latest["epoch"] == 6 and latest["outputs"] == grids[6]["outputs"]


def test_default_ranges_cover_the_training_data_with_a_margin(
    client: TestClient, settings: Settings
) -> None:
    job = trained_job(
        client, settings, MOONS, CLASSIFIER, CLASSIFIER_TRAINING, model_name="moons-net"
    )
    low, high = MOONS_INPUTS.min(axis=0), MOONS_INPUTS.max(axis=0)
    margin = 0.1 * (high - low)

    for path in ("/v1/models/moons-net/grid", f"/v1/jobs/{job['id']}/grid"):
        grid = client.post(path, json={}).json()

        assert grid["range_source"] == "dataset"
        assert grid["resolution"] == 50 and len(grid["x"]) == 50
        assert grid["x_range"] == pytest.approx([low[0] - margin[0], high[0] + margin[0]])
        assert grid["y_range"] == pytest.approx([low[1] - margin[1], high[1] + margin[1]])
        assert [grid["x"][0], grid["x"][-1]] == grid["x_range"]
        assert [grid["y"][0], grid["y"][-1]] == grid["y_range"]

    # One range given: the other still defaults.
    grid = client.post("/v1/models/moons-net/grid", json={"x_range": [0, 1]}).json()
    assert grid["x_range"] == [0.0, 1.0]
    assert grid["y_range"] == pytest.approx([low[1] - margin[1], high[1] + margin[1]])


@pytest.mark.parametrize(
    ("preprocessing", "source"),
    [({"inputs": "minmax"}, "preprocessing"), ({"inputs": "none"}, "default")],
)
def test_without_its_dataset_a_version_defaults_to_its_scaling_or_to_minus_one_to_one(
    client: TestClient, settings: Settings, preprocessing: dict[str, str], source: str
) -> None:
    job = trained_job(
        client,
        settings,
        MOONS,
        CLASSIFIER,
        CLASSIFIER_TRAINING,
        model_name="moons-net",
        preprocessing=preprocessing,
    )
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204

    grid = client.post("/v1/models/moons-net/grid", json={"resolution": 3}).json()

    assert grid["range_source"] == source
    if source == "default":
        assert grid["x_range"] == grid["y_range"] == [-1.0, 1.0]
    else:
        # minmax records the training rows' extent (validation rows aside): within the data's.
        low, high = MOONS_INPUTS.min(axis=0), MOONS_INPUTS.max(axis=0)
        margin = 0.1 * (high - low)
        assert low[0] - margin[0] <= grid["x_range"][0] < grid["x_range"][1] <= high[0] + margin[0]
        assert low[1] - margin[1] <= grid["y_range"][0] < grid["y_range"][1] <= high[1] + margin[1]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"resolution": MAX_RESOLUTION + 1}, ["body", "resolution"]),
        ({"resolution": 1}, ["body", "resolution"]),
        ({"x_range": [1, 0]}, ["body", "x_range"]),
        ({"y_range": [2, 2]}, ["body", "y_range"]),
        ({"x_range": [0]}, ["body", "x_range"]),
        ({"y_range": [0, 1, 2]}, ["body", "y_range"]),
        # Each end finite, the width not: the points would be infinities.
        ({"x_range": [-1e308, 1e308]}, ["body", "x_range"]),
        ({"version": 1, "alias": "production"}, ["body"]),
    ],
)
def test_bad_resolutions_and_ranges_are_422_naming_the_field(
    client: TestClient, settings: Settings, body: dict[str, Any], location: list[Any]
) -> None:
    job = trained_job(
        client, settings, MOONS, CLASSIFIER, CLASSIFIER_TRAINING, model_name="moons-net"
    )

    for path in ("/v1/models/moons-net/grid", f"/v1/jobs/{job['id']}/grid"):
        if path.startswith("/v1/jobs") and "version" in body:
            continue
        assert problem_locations(client.post(path, json=body))[0][: len(location)] == location


def test_outputs_that_overflow_are_422_and_saturating_ones_are_answered(
    client: TestClient, settings: Settings
) -> None:
    tanh = {**CLASSIFIER, "hidden_activation": "tanh"}
    trained_job(client, settings, MOONS, tanh, CLASSIFIER_TRAINING, model_name="moons-net")
    trained_job(
        client,
        settings,
        SURFACE,
        {"layers": [2, 1]},
        REGRESSION_TRAINING,
        model_name="plane",
        preprocessing={"inputs": "standardize", "targets": "standardize"},
    )
    # The sums overflow: tanh saturates, a linear model's outputs become infinite.
    huge = {"x_range": [-8e307, 8e307], "y_range": [-1, 1], "resolution": 3}

    saturated = client.post("/v1/models/moons-net/grid", json=huge)
    overflowing = client.post("/v1/models/plane/grid", json=huge)
    predicted = client.post("/v1/models/plane/predict", json={"inputs": [[0, 0], [8e307, 0]]})

    assert saturated.status_code == 200, saturated.text
    assert np.isfinite(np.array(saturated.json()["outputs"])).all()
    assert problem_locations(overflowing) == [["body", "x_range"], ["body", "y_range"]]
    # Predict's rule, which the grid follows.
    assert problem_locations(predicted) == [["body", "inputs", 1]]


def test_a_grid_counts_against_the_prediction_size_limits(
    settings: Settings, migrated_url: str
) -> None:
    small = Settings(database_url=migrated_url, max_predict_outputs=2 * 10 * 10)
    with TestClient(create_app(small)) as client:
        trained_job(client, small, MOONS, CLASSIFIER, CLASSIFIER_TRAINING, model_name="moons-net")

        assert client.post("/v1/models/moons-net/grid", json={"resolution": 10}).is_success
        refused = client.post("/v1/models/moons-net/grid", json={"resolution": 11})

    assert problem_locations(refused) == [["body", "resolution"]]
    assert "BACKPROP_MAX_PREDICT_OUTPUTS" in refused.json()["detail"]


def test_a_model_without_two_inputs_is_422(client: TestClient, settings: Settings) -> None:
    job = run_job(
        client,
        settings,
        REGRESSION_TRAINING,
        {"name": "sine", "generator": {"kind": "sine", "n_samples": 20}},
        {"layers": [1, 4, 1], "hidden_activation": "tanh"},
        model_name="sine-net",
    )

    for path, location in (
        ("/v1/models/sine-net/grid", ["path", "name"]),
        (f"/v1/jobs/{job['id']}/grid", ["path", "job_id"]),
    ):
        response = client.post(path, json={"resolution": 3})
        assert problem_locations(response) == [location]
        assert "exactly 2 inputs" in response.json()["detail"]
        assert "has 1" in response.json()["detail"]


def test_unknown_models_versions_aliases_jobs_and_epochs_are_404(
    client: TestClient, settings: Settings
) -> None:
    job = trained_job(
        client, settings, MOONS, CLASSIFIER, CLASSIFIER_TRAINING, model_name="moons-net"
    )
    unknown_job = "0" * 32

    for path, body in (
        ("/v1/models/no-such-model/grid", {}),
        ("/v1/models/moons-net/grid", {"version": 2}),
        ("/v1/models/moons-net/grid", {"alias": "production"}),
        (f"/v1/jobs/{unknown_job}/grid", {}),
        (f"/v1/jobs/{job['id']}/grid", {"epoch": 2}),
    ):
        response = client.post(path, json=body)
        assert response.status_code == 404, (path, body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
