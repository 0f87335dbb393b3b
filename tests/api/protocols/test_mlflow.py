"""MLflow's scoring protocol over HTTP: models trained by a real worker from CSV uploads
with a header (a labelled classifier and a regression model), asked in every payload form
MLflow's server accepts, each answered as the native predict answers the same rows."""

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings
from service.jobs.worker import Worker
from tests.api.test_bad_input import assert_problem
from tests.jobs.worker_helpers import worker_settings

RNG = np.random.default_rng(0)
WEIGHTS = RNG.uniform(3, 35, 40)
HEIGHTS = WEIGHTS * 1.8 + 15 + RNG.normal(0, 2, 40)
PETS_CSV = "weight,height,kind\n" + "".join(
    f"{w:.3f},{h:.3f},{'dog' if w > 15 else 'cat'}\n" for w, h in zip(WEIGHTS, HEIGHTS, strict=True)
)
GROWTH_CSV = "weight,height,age\n" + "".join(
    f"{w:.3f},{h:.3f},{w / 3 + h / 20:.3f}\n" for w, h in zip(WEIGHTS, HEIGHTS, strict=True)
)
ROWS = [[4.5, 25.0], [30.0, 60.0], [12.0, 40.0]]
COLUMNS = ["weight", "height"]


def train(client: TestClient, url: str, name: str, csv: str, **form: str) -> None:
    """Upload `csv`, train a model `name` on it with a worker in this process."""
    uploaded = client.post(
        "/v1/datasets/csv",
        files={"file": (f"{name}.csv", csv.encode(), "text/csv")},
        data={"name": name, **form},
    )
    assert uploaded.status_code == 201, uploaded.text
    job = client.post(
        "/v1/jobs",
        json={
            "dataset_id": uploaded.json()["id"],
            "model_name": name,
            "network": {"layers": [2, 6, 1], "hidden_activation": "tanh"},
            "training": {"optimizer": "adam", "learning_rate": 0.05, "epochs": 30},
        },
    )
    assert job.status_code == 202, job.text
    with Worker(worker_settings(url)) as worker:
        worker.run(threading.Event(), until_idle=True)
    assert client.get(f"/v1/jobs/{job.json()['id']}").json()["status"] == "succeeded"


@pytest.fixture
def trained(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        train(client, settings.database_url, "pets", PETS_CSV, label_column="kind")
        train(client, settings.database_url, "growth", GROWTH_CSV)
        yield client


def native(client: TestClient, name: str, rows: list[list[float]], **query: Any) -> Any:
    response = client.post(f"/v1/models/{name}/predict", json={"inputs": rows, **query})
    assert response.status_code == 200, response.text
    return response.json()


def invoke(client: TestClient, name: str, body: Any, **query: Any) -> Any:
    response = client.post(f"/v1/models/{name}/invocations", json=body, params=query)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def payloads(rows: list[list[float]], columns: list[str]) -> dict[str, Any]:
    """The same rows in every JSON form MLflow's scoring server accepts."""
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    by_column = {column: [row[i] for row in rows] for i, column in enumerate(columns)}
    return {
        "dataframe_split": {"dataframe_split": {"columns": columns, "data": rows}},
        "dataframe_split_with_index": {
            "dataframe_split": {"columns": columns, "data": rows, "index": [0, 1, 2]}
        },
        "dataframe_split_unnamed": {"dataframe_split": {"data": rows}},
        "dataframe_records": {"dataframe_records": records},
        "instances_rows": {"instances": rows},
        "instances_records": {"instances": records},
        "inputs_rows": {"inputs": rows},
        "inputs_columns": {"inputs": by_column},
        "inputs_records": {"inputs": records},
    }


def test_every_payload_form_answers_the_classifiers_class_names(trained: TestClient) -> None:
    expected = native(trained, "pets", ROWS)["labels"]
    assert set(expected) <= {"cat", "dog"}

    for form, body in payloads(ROWS, COLUMNS).items():
        assert invoke(trained, "pets", body) == expected, form


def test_every_payload_form_answers_the_regression_outputs_flat(trained: TestClient) -> None:
    outputs = native(trained, "growth", ROWS)["outputs"]
    expected = [row[0] for row in outputs]

    for form, body in payloads(ROWS, COLUMNS).items():
        assert invoke(trained, "growth", body) == expected, form


@pytest.mark.parametrize("header", [True, False], ids=["with-header", "without-header"])
def test_a_csv_body_answers_as_the_json_ones(trained: TestClient, header: bool) -> None:
    text = ("weight,height\n" if header else "") + "".join(f"{w},{h}\n" for w, h in ROWS)

    for name, field in (("pets", "labels"), ("growth", "outputs")):
        response = trained.post(
            f"/v1/models/{name}/invocations",
            content=text.encode(),
            headers={"Content-Type": "text/csv; charset=utf-8"},
        )
        assert response.status_code == 200, response.text
        expected = native(trained, name, ROWS)[field]
        flat = [row[0] for row in expected] if field == "outputs" else expected
        assert response.json()["predictions"] == flat


def test_columns_are_taken_by_name_in_any_order(trained: TestClient) -> None:
    swapped = [[h, w] for w, h in ROWS]
    expected = native(trained, "pets", ROWS)["labels"]

    split = {"dataframe_split": {"columns": ["height", "weight"], "data": swapped}}
    assert invoke(trained, "pets", split) == expected
    header_swapped = "height,weight\n" + "".join(f"{h},{w}\n" for w, h in ROWS)
    response = trained.post(
        "/v1/models/pets/invocations",
        content=header_swapped.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.json()["predictions"] == expected


def test_params_output_asks_for_probabilities_or_outputs(trained: TestClient) -> None:
    body = native(trained, "pets", ROWS)
    split = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}

    probabilities = invoke(trained, "pets", {**split, "params": {"output": "probabilities"}})
    outputs = invoke(trained, "pets", {**split, "params": {"output": "outputs"}})

    assert probabilities == body["probabilities"]
    assert outputs == [row[0] for row in body["outputs"]]
    refused = trained.post(
        "/v1/models/growth/invocations", json={**split, "params": {"output": "labels"}}
    )
    assert_problem(refused, 422)
    assert refused.json()["errors"][0]["loc"] == ["body", "params", "output"]


def test_version_and_alias_choose_the_model_as_on_predict(trained: TestClient) -> None:
    assert trained.put("/v1/models/pets/aliases/production", json={"version": 1}).status_code == 200
    body = {"instances": ROWS}
    expected = native(trained, "pets", ROWS)["labels"]

    assert invoke(trained, "pets", body, version=1) == expected
    assert invoke(trained, "pets", body, alias="production") == expected
    both = trained.post(
        "/v1/models/pets/invocations", json=body, params={"version": 1, "alias": "production"}
    )
    assert_problem(both, 422)
    missing = trained.post("/v1/models/pets/invocations", json=body, params={"version": 9})
    assert_problem(missing, 404)
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        (
            {"dataframe_split": {"columns": ["weight", "size"], "data": ROWS}},
            ["body", "dataframe_split", "columns"],
            ["'size'", "'height'"],
        ),
        (
            {"dataframe_records": [{"weight": 1, "height": 2, "colour": 3}]},
            ["body", "dataframe_records"],
            ["'colour'"],
        ),
        ({"inputs": {"weight": [1.0, 2.0], "height": [1.0]}}, ["body", "inputs"], ["equally"]),
        ({"instances": [[1.0, 2.0, 3.0]]}, ["body", "instances"], ["2 values"]),
        ({"instances": ROWS, "inputs": ROWS}, ["body", "inputs"], ["exactly one"]),
        ({}, ["body"], ["exactly one"]),
    ],
    ids=[
        "unknown-and-missing-column",
        "unknown-record-key",
        "ragged-columns",
        "too-wide",
        "two-forms",
        "no-form",
    ],
)
def test_bad_payloads_are_a_422_naming_the_field_with_mlflows_error_code(
    trained: TestClient, body: dict[str, Any], loc: list[str], words: list[str]
) -> None:
    response = trained.post("/v1/models/pets/invocations", json=body)

    assert_problem(response, 422)
    problem = response.json()
    assert problem["errors"][0]["loc"] == loc
    assert problem["error_code"] == "BAD_REQUEST"
    assert problem["message"] == problem["detail"]
    for word in words:
        assert word in problem["detail"]


def test_other_content_types_are_a_415(trained: TestClient) -> None:
    response = trained.post(
        "/v1/models/pets/invocations", content=b"1,2", headers={"Content-Type": "text/plain"}
    )

    assert_problem(response, 415)
    assert response.json()["error_code"] == "BAD_REQUEST"
