"""Evaluating a registered model or a job's snapshot over HTTP, on a stored dataset or on
inline rows: loss, metrics and the confusion matrix, checked against hand counts on models
whose every prediction is known, and bad data refused with the field at fault named."""

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from service.api.app import create_app
from service.config import Settings
from service.core import Model, Parameters, RunSpec
from service.core.labels import ClassName
from tests.api.test_predictions import store_model

# One input x; the three classes win on x < -0.5, |x| < 0.5 and x > 0.5: logits (-x, 0.5, x).
THREE_CLASSES = ("cat", "dog", "fox")
INPUTS = [[-2.0], [-2.0], [0.0], [0.0], [2.0], [2.0], [2.0]]
PREDICTED = ["cat", "cat", "dog", "dog", "fox", "fox", "fox"]
TRUE = ["cat", "dog", "dog", "fox", "fox", "fox", "cat"]
# By hand from TRUE (rows) and PREDICTED (columns), in THREE_CLASSES order.
MATRIX = [[1, 0, 1], [1, 1, 0], [0, 1, 2]]


def linear_model(
    weights: list[float],
    biases: list[float],
    classes: tuple[ClassName, ...] | None,
    identity: bool = False,
) -> Model:
    """A one-input, one-layer model with these weights: softmax over several outputs,
    sigmoid for one output with classes, identity without (or when asked)."""
    width = len(weights)
    if classes is None or identity:
        output, loss = "identity", "mse"
    elif width == 1:
        output, loss = "sigmoid", "binary_crossentropy"
    else:
        output, loss = "softmax", "categorical_crossentropy"
    network = RunSpec.from_dict(
        {"network": {"layers": [1, width], "output_activation": output}, "training": {"loss": loss}}
    ).network
    parameters = Parameters.zeros(network.layers)
    parameters.weights[0][:, 0] = weights
    parameters.biases[0][:] = biases
    return Model(network, parameters, classes=classes)


def three_classes() -> Model:
    return linear_model([-1.0, 0.0, 1.0], [0.0, 0.5, 0.0], THREE_CLASSES)


def error_locations(response: Any) -> list[list[Any]]:
    return [error["loc"] for error in response.json()["errors"]]


def test_the_confusion_matrix_and_metrics_match_a_hand_count(
    client: TestClient, db_session: Session
) -> None:
    store_model(db_session, "pets", three_classes())

    response = client.post("/v1/models/pets/evaluate", json={"inputs": INPUTS, "labels": TRUE})
    predicted = client.post("/v1/models/pets/predict", json={"inputs": INPUTS}).json()

    assert response.status_code == 200, response.text
    body = response.json()
    assert predicted["labels"] == PREDICTED
    assert body["confusion_matrix"] == {"classes": list(THREE_CLASSES), "matrix": MATRIX}
    assert body["n_samples"] == 7 and body["model"] == {"name": "pets", "version": 1}
    # Per class (cat, dog, fox): precision 1/2, 1/2, 2/3 and recall 1/2, 1/2, 2/3.
    macro = (0.5 + 0.5 + 2 / 3) / 3
    assert body["metrics"] == pytest.approx(
        {"accuracy": 4 / 7, "precision": macro, "recall": macro, "f1": macro}, abs=1e-12
    )
    # Categorical cross-entropy: the mean of -log(probability of the true class).
    true_probabilities = [
        row[THREE_CLASSES.index(name)]
        for row, name in zip(predicted["probabilities"], TRUE, strict=True)
    ]
    assert body["loss"] == pytest.approx(-np.mean(np.log(true_probabilities)), abs=1e-12)


def test_a_labelled_dataset_is_matched_to_the_model_by_class_name(
    client: TestClient, db_session: Session
) -> None:
    store_model(db_session, "pets", three_classes())
    # Without dog, the dataset's own classes are (cat, fox): fox is its class 1 but the
    # model's class 2.
    rows = [(x, name) for x, name in zip(INPUTS, TRUE, strict=True) if name != "dog"]
    dataset = client.post(
        "/v1/datasets",
        json={"name": "pets", "inputs": [x for x, _ in rows], "labels": [n for _, n in rows]},
    ).json()

    by_dataset = client.post("/v1/models/pets/evaluate", json={"dataset_id": dataset["id"]})
    inline = client.post(
        "/v1/models/pets/evaluate",
        json={"inputs": [x for x, _ in rows], "labels": [n for _, n in rows]},
    )

    assert by_dataset.status_code == 200, by_dataset.text
    assert by_dataset.json() == inline.json()
    assert by_dataset.json()["confusion_matrix"]["matrix"] == [[1, 0, 1], [0, 0, 0], [0, 1, 2]]


@pytest.mark.parametrize(
    "classes", [(False, True), (3, 7), ("no", "yes")], ids=["booleans", "integers", "strings"]
)
def test_labels_keep_their_type_through_evaluation(
    client: TestClient, db_session: Session, classes: tuple[ClassName, ClassName]
) -> None:
    # A width-1 sigmoid: x >= 0 is the second class.
    store_model(db_session, "binary", linear_model([1.0], [0.0], classes))
    no, yes = classes
    labels = [no, no, yes, yes, yes]

    response = client.post(
        "/v1/models/binary/evaluate",
        json={"inputs": [[-1], [1], [1], [2], [-3]], "labels": labels},
    )

    assert response.status_code == 200, response.text
    matrix = response.json()["confusion_matrix"]
    assert matrix == {"classes": [no, yes], "matrix": [[1, 1], [1, 2]]}
    assert [type(name) for name in matrix["classes"]] == [type(no), type(yes)]


def test_an_identity_output_trained_on_labels_names_classes_and_is_scored_as_a_classifier(
    client: TestClient, db_session: Session
) -> None:
    # The notebook's XOR network trains identity + mse on 0/1 labels: it still has classes.
    store_model(db_session, "xor", linear_model([1.0], [0.0], (0, 1), identity=True))

    response = client.post(
        "/v1/models/xor/evaluate", json={"inputs": [[-1], [1], [1], [2]], "labels": [0, 0, 1, 1]}
    )
    predicted = client.post("/v1/models/xor/predict", json={"inputs": [[-1], [1]]}).json()
    version = client.get("/v1/models/xor/versions/1").json()

    assert response.status_code == 200, response.text
    assert response.json()["confusion_matrix"] == {"classes": [0, 1], "matrix": [[1, 1], [0, 2]]}
    # mse against the 0/1 encoding of the labels: outputs -1, 1, 1, 2.
    assert response.json()["loss"] == pytest.approx(0.5 * (1 + 1 + 0 + 1) / 4)
    assert (version["task"], version["classes"]) == ("classification", [0, 1])
    # Its outputs pick a class but are no probabilities.
    assert predicted == {
        "outputs": [[-1.0], [1.0]],
        "labels": [0, 1],
        "classes": [0, 1],
        "model": {"name": "xor", "version": 1},
    }


def test_a_regression_model_is_scored_in_the_targets_units(
    client: TestClient, db_session: Session
) -> None:
    store_model(db_session, "line", linear_model([2.0], [1.0], None))  # y = 2x + 1
    inputs, targets = [[0], [1], [2], [3]], [[1], [3], [6], [7]]  # one miss, by 1
    dataset = client.post(
        "/v1/datasets", json={"name": "line", "inputs": inputs, "targets": targets}
    ).json()

    inline = client.post("/v1/models/line/evaluate", json={"inputs": inputs, "targets": targets})
    by_dataset = client.post("/v1/models/line/evaluate", json={"dataset_id": dataset["id"]})

    assert inline.status_code == 200, inline.text
    body = inline.json()
    # Targets' mean 4.25: total sum of squares 22.75, residual 1.
    assert body["metrics"] == pytest.approx({"mae": 0.25, "rmse": 0.5, "r2": 1 - 1 / 22.75})
    assert body["loss"] == pytest.approx(0.5 * 1 / 4)  # half the squared error, averaged
    assert body["confusion_matrix"] is None
    assert by_dataset.json() == body


def test_a_job_evaluates_at_a_snapshot_epoch(client: TestClient, db_session: Session) -> None:
    job_id = store_model(db_session, "pets", three_classes(), epochs=(5, 10))
    body = {"inputs": INPUTS, "labels": TRUE}

    at_five = client.post(f"/v1/jobs/{job_id}/evaluate", json={**body, "epoch": 5})
    latest = client.post(f"/v1/jobs/{job_id}/evaluate", json=body)
    missing = client.post(f"/v1/jobs/{job_id}/evaluate", json={**body, "epoch": 7})

    assert at_five.status_code == 200, at_five.text
    assert (at_five.json()["epoch"], latest.json()["epoch"]) == (5, 10)
    assert at_five.json()["confusion_matrix"]["matrix"] == MATRIX
    assert "model" not in at_five.json()
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"inputs": [[1, 2]], "labels": ["cat"]}, ["body", "inputs"]),
        ({"inputs": [[1]], "labels": ["cow"]}, ["body", "labels", 0]),
        ({"inputs": [[1], [2]], "labels": ["cat", 1]}, ["body", "labels"]),
        ({"inputs": [[1], [2]], "labels": ["cat"]}, ["body", "labels"]),
        ({"inputs": [[1]], "targets": [[1, 0, 0]]}, ["body", "targets"]),
        ({"inputs": [[1]], "labels": ["cat"], "targets": [[1]]}, ["body", "targets"]),
        ({"inputs": [[1]], "dataset_id": "0" * 32}, ["body", "inputs"]),
        ({"inputs": [[1]]}, ["body"]),
        ({"inputs": [[1]], "labels": [1.0]}, ["body", "labels", 0, "bool"]),
    ],
    ids=[
        "width",
        "unknown-class",
        "mixed-types",
        "row-count",
        "targets-for-a-classifier",
        "labels-and-targets",
        "dataset-and-inputs",
        "no-answers",
        "float-label",
    ],
)
def test_bad_evaluation_data_is_refused_naming_the_field(
    client: TestClient, db_session: Session, body: dict[str, Any], location: list[Any]
) -> None:
    store_model(db_session, "pets", three_classes())

    response = client.post("/v1/models/pets/evaluate", json=body)

    assert response.status_code == 422, response.text
    assert error_locations(response)[0] == location


def test_a_dataset_that_does_not_fit_the_model_is_refused_naming_dataset_id(
    client: TestClient, db_session: Session
) -> None:
    store_model(db_session, "pets", three_classes())
    store_model(db_session, "line", linear_model([2.0], [1.0], None))
    wide = client.post(
        "/v1/datasets", json={"name": "wide", "inputs": [[1, 2], [3, 4]], "labels": ["cat", "dog"]}
    ).json()
    regression = client.post(
        "/v1/datasets", json={"name": "numbers", "inputs": [[1], [2]], "targets": [[1], [2]]}
    ).json()
    labelled = client.post(
        "/v1/datasets", json={"name": "pets", "inputs": [[1], [2]], "labels": ["cat", "dog"]}
    ).json()

    answers = {
        "width": client.post("/v1/models/pets/evaluate", json={"dataset_id": wide["id"]}),
        "targets on a classifier": client.post(
            "/v1/models/pets/evaluate", json={"dataset_id": regression["id"]}
        ),
        "labels on a regression model": client.post(
            "/v1/models/line/evaluate", json={"dataset_id": labelled["id"]}
        ),
    }

    for case, response in answers.items():
        assert response.status_code == 422, (case, response.text)
        assert error_locations(response) == [["body", "dataset_id"]], case
        assert wide["id"] in response.json()["detail"] or case != "width"


def test_unknown_datasets_models_and_jobs_are_not_found(
    client: TestClient, db_session: Session
) -> None:
    store_model(db_session, "pets", three_classes())
    data = {"inputs": INPUTS, "labels": TRUE}

    responses = [
        client.post("/v1/models/pets/evaluate", json={"dataset_id": "0" * 32}),
        client.post("/v1/models/nobody/evaluate", json=data),
        client.post("/v1/models/pets/evaluate", json={**data, "version": 2}),
        client.post(f"/v1/jobs/{'0' * 32}/evaluate", json=data),
    ]

    assert [response.status_code for response in responses] == [404] * 4
    assert "dataset 00000000000000000000000000000000" in responses[0].json()["detail"]


def test_evaluations_over_the_prediction_limits_are_refused_naming_their_rows(
    settings: Settings, db_session: Session
) -> None:
    store_model(db_session, "pets", three_classes())
    data = {"inputs": [[0.0]] * 11, "labels": ["cat"] * 11}
    # 11 rows x 3 outputs: over a limit of 30 outputs.
    with TestClient(create_app(settings.model_copy(update={"max_predict_outputs": 30}))) as client:
        dataset = client.post("/v1/datasets", json={"name": "pets", **data}).json()
        inline = client.post("/v1/models/pets/evaluate", json=data)
        by_dataset = client.post("/v1/models/pets/evaluate", json={"dataset_id": dataset["id"]})

    assert (inline.status_code, by_dataset.status_code) == (422, 422)
    assert error_locations(inline) == [["body", "inputs"]]
    assert error_locations(by_dataset) == [["body", "dataset_id"]]
