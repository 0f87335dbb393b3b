"""`training.engine` over HTTP: its choices in the OpenAPI document, a 422 naming it for
an unknown engine or for compiled with float32, and nothing written for either."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_bad_input import assert_problem
from tests.helpers import XOR_DATASET, row_counts


@pytest.fixture
def dataset_id(client: TestClient) -> str:
    response = client.post("/v1/datasets", json=XOR_DATASET)
    assert response.status_code == 201
    return str(response.json()["id"])


def job(dataset_id: str, **training: Any) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "network": {"layers": [2, 4, 1]},
        "training": {"epochs": 10, **training},
    }


def test_the_openapi_document_lists_the_engines(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["TrainingSpecIn"]

    engine = schema["properties"]["engine"]
    assert engine["enum"] == ["auto", "compiled", "numpy"]
    assert engine["default"] == "auto"


@pytest.mark.parametrize(
    "training",
    [{"engine": "fortran"}, {"engine": "compiled", "dtype": "float32"}],
)
def test_a_bad_engine_is_a_422_naming_the_field(
    client: TestClient, settings: Any, dataset_id: str, training: dict[str, Any]
) -> None:
    before = row_counts(settings.database_url)

    response = client.post("/v1/jobs", json=job(dataset_id, **training))

    problem = assert_problem(response, 422, ["body", "training", "engine"])
    assert row_counts(settings.database_url) == before
    assert problem["errors"][0]["msg"]


@pytest.mark.parametrize("engine", ["auto", "numpy", "compiled"])
def test_every_engine_is_accepted(client: TestClient, dataset_id: str, engine: str) -> None:
    response = client.post("/v1/jobs", json=job(dataset_id, engine=engine))

    assert response.status_code == 202, response.text
    assert response.json()["spec"]["training"]["engine"] == engine
