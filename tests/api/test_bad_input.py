"""Every bad request gets a 4xx problem that names the field, and writes nothing."""

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import XOR_DATASET, row_counts

XOR_ROWS = {
    "name": "xor",
    "inputs": [[1, 1], [-1, 1], [1, -1], [-1, -1]],
    "targets": [[1], [0], [0], [1]],
}


def job_body(dataset_id: str, **network: Any) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "network": {"layers": [2, 4, 1], **network},
        "training": {"epochs": 10},
    }


def assert_problem(response: Any, status: int, loc: list[Any] | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    if loc is not None:
        assert problem["errors"][0]["loc"] == loc, problem
    return problem


@pytest.fixture
def dataset_id(client: TestClient) -> str:
    response = client.post("/v1/datasets", json=XOR_DATASET)
    assert response.status_code == 201
    return str(response.json()["id"])


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_in_rows_are_rejected(
    client: TestClient, settings: Any, token: bytes
) -> None:
    before = row_counts(settings.database_url)
    body = b'{"name": "bad", "inputs": [[1, 1], [1, ' + token + b']], "targets": [[1], [0]]}'

    response = client.post(
        "/v1/datasets", content=body, headers={"content-type": "application/json"}
    )

    problem = assert_problem(response, 422, ["body", "inputs", 1, 1])
    assert "finite" in problem["errors"][0]["msg"]
    assert row_counts(settings.database_url) == before


def test_ragged_rows_name_the_row(client: TestClient, settings: Any) -> None:
    before = row_counts(settings.database_url)
    body = {**XOR_ROWS, "inputs": [[1, 1], [-1, 1], [1], [-1, -1]]}

    problem = assert_problem(client.post("/v1/datasets", json=body), 422, ["body", "inputs", 2])

    assert "1 values" in problem["detail"]
    assert row_counts(settings.database_url) == before


def test_targets_with_another_row_count_are_rejected(client: TestClient) -> None:
    body = {**XOR_ROWS, "targets": [[1], [0]]}

    assert_problem(client.post("/v1/datasets", json=body), 422, ["body", "targets"])


def test_rows_and_generator_together_are_rejected(client: TestClient) -> None:
    body = {**XOR_ROWS, "generator": XOR_DATASET["generator"]}

    problem = assert_problem(client.post("/v1/datasets", json=body), 422, ["body"])

    assert "either inputs with targets or labels, or a generator" in problem["detail"]


def test_inputs_without_targets_name_the_missing_targets(client: TestClient) -> None:
    body = {"name": "half", "inputs": XOR_ROWS["inputs"]}

    problem = assert_problem(client.post("/v1/datasets", json=body), 422, ["body", "targets"])

    assert "or labels" in problem["detail"]


def test_a_null_source_is_refused_as_the_schema_says(client: TestClient) -> None:
    body = {**XOR_DATASET, "inputs": None}

    assert_problem(client.post("/v1/datasets", json=body), 422, ["body"])


def test_unknown_generator_kind_is_named(client: TestClient) -> None:
    body = {"name": "x", "generator": {"kind": "donut", "n_samples": 10}}

    assert_problem(client.post("/v1/datasets", json=body), 422, ["body", "generator", "kind"])


def test_too_many_rows_name_the_limit(client: TestClient, settings: Any) -> None:
    body = {
        "name": "big",
        "generator": {"kind": "moons", "n_samples": settings.max_dataset_rows + 1},
    }

    problem = assert_problem(client.post("/v1/datasets", json=body), 422)

    assert str(settings.max_dataset_rows) in problem["detail"]
    assert "BACKPROP_MAX_DATASET_ROWS" in problem["detail"]


def test_layers_that_do_not_match_the_dataset_are_rejected(
    client: TestClient, settings: Any, dataset_id: str
) -> None:
    targets_id = client.post("/v1/datasets", json=XOR_ROWS).json()["id"]
    before = row_counts(settings.database_url)

    wrong_input = client.post(
        "/v1/jobs", json={**job_body(dataset_id), "network": {"layers": [3, 4, 1]}}
    )
    wrong_output = client.post(
        "/v1/jobs", json={**job_body(targets_id), "network": {"layers": [2, 4, 2]}}
    )

    assert_problem(wrong_input, 422, ["body", "network", "layers", 0])
    assert_problem(wrong_output, 422, ["body", "network", "layers", 2])
    assert row_counts(settings.database_url) == before


@pytest.mark.parametrize(
    ("labels", "width", "words"),
    [
        # Two classes: one 0/1 unit or two softmax units fit, three do not.
        (["a", "b", "a", "b"], 3, "2 classes"),
        # Three classes need three units; one would get softmax, which needs two.
        (["a", "b", "c", "a"], 1, "3 classes"),
    ],
)
def test_an_output_width_that_does_not_fit_the_classes_names_their_number(
    client: TestClient, settings: Any, labels: list[str], width: int, words: str
) -> None:
    body = {"name": "abc", "inputs": XOR_ROWS["inputs"], "labels": labels}
    dataset_id = client.post("/v1/datasets", json=body).json()["id"]
    before = row_counts(settings.database_url)

    response = client.post(
        "/v1/jobs", json={**job_body(dataset_id), "network": {"layers": [2, 4, width]}}
    )

    problem = assert_problem(response, 422, ["body", "network", "layers", 2])
    assert words in problem["detail"]
    assert row_counts(settings.database_url) == before


@pytest.mark.parametrize(
    ("network", "loc"),
    [
        ({"hidden_activation": "swish"}, ["body", "network", "hidden_activation"]),
        ({"layers": [2, 0, 1]}, ["body", "network", "layers", 1]),
        ({"layers": [2]}, ["body", "network", "layers"]),
        ({"output_activation": "softmax"}, ["body", "network", "output_activation"]),
    ],
)
def test_bad_network_specs_name_the_field(
    client: TestClient, dataset_id: str, network: dict[str, Any], loc: list[Any]
) -> None:
    body = job_body(dataset_id)
    body["network"] = {**body["network"], **network}

    assert_problem(client.post("/v1/jobs", json=body), 422, loc)


@pytest.mark.parametrize(
    ("training", "loc"),
    [
        ({"learning_rate": 0}, ["body", "training", "learning_rate"]),
        ({"learning_rate": -1}, ["body", "training", "learning_rate"]),
        ({"epochs": 0}, ["body", "training", "epochs"]),
        ({"loss": "categorical_crossentropy"}, ["body", "training", "loss"]),
        ({"optimizer": "rmsprop"}, ["body", "training", "optimizer"]),
        ({"bogus": 1}, ["body", "training", "bogus"]),
        ({"validation_split": 1.0}, ["body", "training", "validation_split"]),
    ],
)
def test_bad_training_specs_name_the_field(
    client: TestClient, dataset_id: str, training: dict[str, Any], loc: list[Any]
) -> None:
    body = job_body(dataset_id)
    body["training"] = {**body["training"], **training}

    assert_problem(client.post("/v1/jobs", json=body), 422, loc)


def test_a_model_above_the_parameter_limit_is_refused(
    client: TestClient, settings: Any, dataset_id: str
) -> None:
    width = math.isqrt(settings.max_parameters) + 2
    body = job_body(dataset_id)
    body["network"]["layers"] = [2, 4096, 4096, 4096, 1] if width > 4096 else [2, width, width, 1]

    problem = assert_problem(client.post("/v1/jobs", json=body), 422)

    assert "BACKPROP_MAX_PARAMETERS" in problem["detail"]


def test_too_many_epochs_name_the_limit(client: TestClient, settings: Any, dataset_id: str) -> None:
    body = job_body(dataset_id)
    body["training"]["epochs"] = settings.max_epochs + 1

    problem = assert_problem(
        client.post("/v1/jobs", json=body), 422, ["body", "training", "epochs"]
    )

    assert "BACKPROP_MAX_EPOCHS" in problem["detail"]


def test_a_loss_the_datasets_targets_do_not_fit_names_the_dataset(client: TestClient) -> None:
    regression = client.post(
        "/v1/datasets",
        json={"name": "sine", "generator": {"kind": "sine", "n_samples": 20, "noise": 0.5}},
    ).json()["id"]
    body = {
        "dataset_id": regression,
        "network": {"layers": [1, 4, 1], "output_activation": "sigmoid"},
        "training": {"loss": "binary_crossentropy"},
    }

    problem = assert_problem(client.post("/v1/jobs", json=body), 422, ["body", "dataset_id"])

    assert "between 0 and 1" in problem["detail"]


# Well formed (32 hex digits), but nothing has it.
UNKNOWN_ID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v1/jobs/{UNKNOWN_ID}"),
        ("GET", f"/v1/datasets/{UNKNOWN_ID}"),
        ("DELETE", f"/v1/datasets/{UNKNOWN_ID}"),
        ("POST", f"/v1/jobs/{UNKNOWN_ID}/cancel"),
        ("GET", f"/v1/jobs/{UNKNOWN_ID}/history"),
        ("GET", f"/v1/jobs/{UNKNOWN_ID}/snapshots"),
        ("GET", f"/v1/jobs/{UNKNOWN_ID}/snapshots/1"),
        ("GET", "/v1/models/missing"),
        ("GET", "/v1/models/missing/versions/1"),
    ],
)
def test_unknown_ids_answer_404(client: TestClient, method: str, path: str) -> None:
    problem = assert_problem(client.request(method, path), 404)

    assert path.split("/")[3] in problem["detail"]


ROWS = {"inputs": [[1.0, 2.0]]}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/jobs/%00", None),
        ("GET", "/v1/jobs/not-an-id/history", None),
        ("GET", "/v1/jobs/%00/snapshots/1", None),
        ("GET", "/v1/jobs/%00/events", None),
        ("POST", "/v1/jobs/%00/cancel", None),
        ("POST", "/v1/jobs/%00/predict", ROWS),
        ("GET", "/v1/datasets/%00", None),
        ("GET", "/v1/datasets/%00/rows", None),
        ("DELETE", "/v1/datasets/%00", None),
    ],
)
def test_a_path_whose_id_cannot_exist_is_404(
    client: TestClient, method: str, path: str, body: Any
) -> None:
    # PostgreSQL refuses a NUL in text outright: looked up, it answered 500.
    assert_problem(client.request(method, path, json=body), 404)


def test_get_on_the_csv_upload_path_is_405_not_a_dataset_called_csv(client: TestClient) -> None:
    response = client.get("/v1/datasets/csv")

    assert_problem(response, 405)
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        ("GET", "/v1/jobs?model_name=%00", None, ["query", "model_name"]),
        ("GET", "/v1/models/%00", None, ["path", "name"]),
        ("GET", "/v1/models/%00/versions", None, ["path", "name"]),
        ("POST", "/v1/models/a%00/predict", ROWS, ["path", "name"]),
        ("PUT", "/v1/models/%00/aliases/prod", {"version": 1}, ["path", "name"]),
        ("DELETE", "/v1/models/m/aliases/%00", None, ["path", "alias"]),
        ("POST", "/v1/jobs", {"dataset_id": "\x00", "network": {"layers": [2, 1]}}, None),
        ("POST", "/v1/datasets", {"name": "a\x00", **ROWS, "targets": [[1.0]]}, None),
        # A cursor of this service's shape whose id holds a NUL.
        (
            "GET",
            "/v1/jobs?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwiXHUwMDAwIl0",
            None,
            ["query", "cursor"],
        ),
    ],
)
def test_names_no_stored_thing_can_have_are_422_naming_the_parameter(
    client: TestClient, method: str, path: str, body: Any, loc: list[str] | None
) -> None:
    # PostgreSQL refuses a NUL in text outright: looked up, it answered 500.
    problem = assert_problem(client.request(method, path, json=body), 422, loc)
    if loc is None:
        assert problem["errors"][0]["loc"][:2] in (["body", "dataset_id"], ["body", "name"])


def test_a_job_on_an_unknown_dataset_is_404_and_writes_nothing(
    client: TestClient, settings: Any
) -> None:
    before = row_counts(settings.database_url)

    assert_problem(client.post("/v1/jobs", json=job_body(UNKNOWN_ID)), 404)
    assert row_counts(settings.database_url) == before


def test_cancelling_a_finished_job_is_a_conflict(client: TestClient, dataset_id: str) -> None:
    job = client.post("/v1/jobs", json=job_body(dataset_id)).json()
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"

    problem = assert_problem(client.post(f"/v1/jobs/{job['id']}/cancel"), 409)

    assert "already cancelled" in problem["detail"]


def test_an_oversized_body_is_refused_with_413(client: TestClient, settings: Any) -> None:
    before = row_counts(settings.database_url)
    rows = [[0.5] * 10] * (settings.max_body_bytes // 40)
    body = {"name": "big", "inputs": rows, "targets": [[1]] * len(rows)}

    problem = assert_problem(client.post("/v1/datasets", json=body), 413)

    assert str(settings.max_body_bytes) in problem["detail"]
    assert row_counts(settings.database_url) == before


def test_an_oversized_body_without_content_length_is_refused_on_the_stream(
    client: TestClient, settings: Any
) -> None:
    chunk = b" " * 65536

    def stream() -> Any:
        yield b'{"name": "big", "inputs": ['
        for _ in range(settings.max_body_bytes // len(chunk) + 2):
            yield chunk

    response = client.post(
        "/v1/datasets", content=stream(), headers={"content-type": "application/json"}
    )

    assert_problem(response, 413)


def test_a_bad_cursor_is_a_422_naming_the_cursor(client: TestClient) -> None:
    assert_problem(client.get("/v1/jobs?cursor=garbage"), 422, ["query", "cursor"])


def test_unknown_routes_answer_problem_json(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404)


def test_a_number_sent_as_a_boolean_or_a_string_is_refused(client: TestClient) -> None:
    for value in (True, "1"):
        body = {**XOR_ROWS, "targets": [[value], [0], [0], [1]]}
        assert_problem(client.post("/v1/datasets", json=body), 422, ["body", "targets", 0, 0])


def test_an_integer_written_as_a_whole_float_is_accepted(client: TestClient) -> None:
    body = {"name": "xor", "generator": {"kind": "xor", "n_samples": 4.0}}

    assert client.post("/v1/datasets", json=body).status_code == 201


def test_epochs_and_versions_beyond_the_database_integers_are_422_not_500(
    client: TestClient, dataset_id: str
) -> None:
    too_big = 2**31
    job = client.post("/v1/jobs", json=job_body(dataset_id)).json()["id"]

    for response in (
        client.get(f"/v1/jobs/{job}/snapshots/{too_big}"),
        client.get(f"/v1/models/xor/versions/{too_big}"),
        client.get(f"/v1/jobs/{job}/events", params={"last_event_id": too_big}),
        client.post(f"/v1/jobs/{job}/predict", json={"inputs": [[1, 1]], "epoch": too_big}),
        client.post("/v1/models/xor/predict", json={"inputs": [[1, 1]], "version": too_big}),
        client.put("/v1/models/xor/aliases/production", json={"version": too_big}),
    ):
        assert_problem(response, 422)


def test_a_csv_with_carriage_return_line_ends_is_read(client: TestClient) -> None:
    csv = b"x1,x2,y\r1,1,1\r-1,1,0\r"

    response = client.post(
        "/v1/datasets/csv", files={"file": ("mac.csv", csv, "text/csv")}, data={"name": "cr"}
    )

    assert response.status_code == 201, response.text
    assert response.json()["n_samples"] == 2


def test_a_method_the_path_does_not_take_is_405_allowing_all_it_takes(
    client: TestClient,
) -> None:
    response = client.request("PATCH", "/v1/datasets")

    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"


PETS = {
    "name": "pets",
    "inputs": [[4.1, 30], [25.0, 60], [3.8, 28], [30.2, 65], [5.0, 31], [27.5, 62]],
    "labels": ["cat", "dog", "cat", "dog", "cat", "dog"],
}


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        ({"targets": [[0], [1], [0], [1], [0], [1]]}, ["body", "labels"], "not both"),
        ({"labels": ["cat", "dog", 3, "dog", "cat", "dog"]}, ["body", "labels"], "mixed types"),
        ({"labels": [True, 1, True, 0, False, 1]}, ["body", "labels"], "mixed types"),
        ({"labels": ["cat", "dog"]}, ["body", "labels"], "2 labels"),
        ({"labels": None}, ["body", "labels"], "not null"),
    ],
    ids=["with-targets", "strings-and-integers", "booleans-and-integers", "too-few", "null"],
)
def test_bad_labels_are_a_422_naming_labels_and_write_nothing(
    client: TestClient, settings: Any, change: dict[str, Any], loc: list[Any], words: str
) -> None:
    before = row_counts(settings.database_url)

    problem = assert_problem(client.post("/v1/datasets", json={**PETS, **change}), 422, loc)

    assert words in problem["detail"]
    assert row_counts(settings.database_url) == before


def test_a_label_that_is_a_fraction_names_its_row(client: TestClient, settings: Any) -> None:
    before = row_counts(settings.database_url)
    body = {**PETS, "labels": [0, 1, 0, 1.5, 0, 1]}

    problem = assert_problem(client.post("/v1/datasets", json=body), 422)

    # pydantic adds which of the label types it tried last.
    assert problem["errors"][0]["loc"][:3] == ["body", "labels", 3]
    assert row_counts(settings.database_url) == before


@pytest.fixture
def pets_id(client: TestClient) -> str:
    response = client.post("/v1/datasets", json=PETS)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize(
    ("preprocessing", "loc"),
    [
        ({"inputs": "robust"}, ["body", "preprocessing", "inputs"]),
        ({"targets": "minmax"}, ["body", "preprocessing", "targets"]),
        ({"outputs": "none"}, ["body", "preprocessing", "outputs"]),
    ],
)
def test_preprocessing_outside_its_choices_is_a_schema_422(
    client: TestClient, settings: Any, pets_id: str, preprocessing: dict[str, Any], loc: list[Any]
) -> None:
    before = row_counts(settings.database_url)
    body = {**job_body(pets_id), "preprocessing": preprocessing}

    assert_problem(client.post("/v1/jobs", json=body), 422, loc)
    assert row_counts(settings.database_url) == before


def test_standardized_targets_on_labelled_data_name_preprocessing_targets(
    client: TestClient, settings: Any, pets_id: str
) -> None:
    before = row_counts(settings.database_url)
    body = {**job_body(pets_id), "preprocessing": {"targets": "standardize"}}

    problem = assert_problem(
        client.post("/v1/jobs", json=body), 422, ["body", "preprocessing", "targets"]
    )

    assert "class labels" in problem["detail"]
    assert row_counts(settings.database_url) == before


def test_a_class_of_one_sample_with_a_validation_split_names_the_split(
    client: TestClient, settings: Any
) -> None:
    # Stratified, the split would need one "bird" to train on and one to validate.
    body = {**PETS, "labels": ["cat", "dog", "cat", "dog", "bird", "dog"]}
    dataset_id = client.post("/v1/datasets", json=body).json()["id"]
    before = row_counts(settings.database_url)
    job = job_body(dataset_id)
    job["network"]["layers"] = [2, 4, 3]

    split = client.post("/v1/jobs", json={**job, "training": {"validation_split": 0.5}})

    problem = assert_problem(split, 422, ["body", "training", "validation_split"])
    assert "'bird'" in problem["detail"]
    assert row_counts(settings.database_url) == before
    assert client.post("/v1/jobs", json=job).status_code == 202


def test_a_decaying_schedule_whose_decay_grows_the_rate_is_a_422_naming_lr_decay(
    client: TestClient, dataset_id: str, settings: Any
) -> None:
    before = row_counts(settings.database_url)
    body = {
        **job_body(dataset_id),
        "training": {"lr_schedule": "exponential", "lr_decay": 1.01},
    }

    problem = assert_problem(
        client.post("/v1/jobs", json=body), 422, ["body", "training", "lr_decay"]
    )

    assert "at most 1 with lr_schedule exponential" in problem["detail"]
    assert row_counts(settings.database_url) == before
