"""CSV upload as a user sends it: a header row and a column of class names, stored as a
classification dataset; and the upload's own body limit, apart from the JSON routes'."""

from typing import Any

from fastapi.testclient import TestClient

from tests.api.test_bad_input import assert_problem
from tests.api.test_limits import assert_limit, limited

PETS = b"weight,height,kind\n4.5,25,cat\n30,60,dog\n3.9,23,cat\n28,55,dog\n5.1,27,cat\n"


def upload(client: TestClient, data: bytes, **form: str) -> Any:
    return client.post(
        "/v1/datasets/csv",
        files={"file": ("pets.csv", data, "text/csv")},
        data={"name": "pets", **form},
    )


def test_a_label_column_upload_is_a_classification_dataset_with_its_classes(
    client: TestClient,
) -> None:
    # Needs the datasets' `task`, `classes`, `class_counts` and `feature_names` fields.
    response = upload(client, PETS, label_column="kind")

    assert response.status_code == 201, response.text
    created = response.json()
    dataset = client.get(f"/v1/datasets/{created['id']}").json()
    assert dataset == created
    assert (dataset["n_samples"], dataset["n_features"]) == (5, 2)
    assert dataset["task"] == "classification"
    assert dataset["classes"] == ["cat", "dog"]
    assert dataset["class_counts"] == [3, 2]
    assert dataset["feature_names"] == ["weight", "height"]
    assert dataset["source"] == {"kind": "csv", "filename": "pets.csv"}


def test_a_label_column_may_be_given_by_index(client: TestClient) -> None:
    response = upload(client, b"1,0,2\n3,1,4\n5,1,6\n", label_column="1")

    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["classes"] == [0, 1]
    assert dataset["n_features"] == 2
    assert dataset["feature_names"] is None


def test_an_upload_with_targets_is_still_a_regression_dataset(client: TestClient) -> None:
    response = upload(client, b"a,b,y\n1,2,3\n4,5,6\n", targets="1")

    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["task"] == "regression"
    assert dataset["feature_names"] == ["a", "b"]


def test_both_targets_and_label_column_are_a_422_naming_label_column(client: TestClient) -> None:
    response = upload(client, PETS, label_column="kind", targets="1")

    problem = assert_problem(response, 422)
    assert "label_column" in problem["detail"]
    assert client.get("/v1/datasets").json()["items"] == []


def test_a_label_column_not_in_the_header_is_a_422_naming_it(client: TestClient) -> None:
    response = upload(client, PETS, label_column="species")

    problem = assert_problem(response, 422)
    assert "label_column" in problem["detail"]
    assert "species" in problem["detail"]
    assert client.get("/v1/datasets").json()["items"] == []


def test_a_bad_feature_is_a_422_naming_the_row_and_column(client: TestClient) -> None:
    response = upload(client, PETS.replace(b"30,60", b"30,tall"), label_column="kind")

    problem = assert_problem(response, 422)
    assert "row 2" in problem["detail"]
    assert "height" in problem["detail"]


def test_the_upload_limit_is_its_own_and_the_json_routes_keep_theirs(
    migrated_url: str,
) -> None:
    rows = b"a,y\n" + b"1.5,2\n" * 2_000  # 12 kB
    with limited(migrated_url, max_body_bytes=5_000, max_upload_bytes=50_000) as client:
        assert upload(client, rows).status_code == 201
        # The JSON routes still refuse what the upload route takes.
        body = {"name": "big", "inputs": [[1.5]] * 2_000, "targets": [[2.0]] * 2_000}
        assert_limit(client.post("/v1/datasets", json=body), 413, "BACKPROP_MAX_BODY_BYTES", 5_000)

        response = upload(client, rows * 5)

        assert_limit(response, 413, "BACKPROP_MAX_UPLOAD_BYTES", 50_000)
        assert len(client.get("/v1/datasets").json()["items"]) == 1


def test_rows_above_the_dataset_limit_are_refused(client: TestClient) -> None:
    # The suite's app allows 5,000 rows.
    response = upload(client, b"a,y\n" + b"1,2\n" * 5_001)

    assert_limit(response, 422, "BACKPROP_MAX_DATASET_ROWS", 5_000)
