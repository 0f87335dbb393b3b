"""One path for every prediction: each operation that predicts is dispatched directly
(`service.api.direct`), small batches are answered on the event loop and large ones in
the thread pool, with the same answers either way."""

import numpy as np
from fastapi.testclient import TestClient

from service.api.direct import VALID_PATHS_KEPT, DirectRoute
from service.api.predictions import INLINE_ROWS
from service.db import make_engine, make_session_factory
from tests.api.test_predictions import RAW_INPUTS, names_per_row, store_model, train_on_labels

# Path endings of the operations that answer predictions, in any format.
PREDICTING = ("/predict", "/grid", "/invocations", "/infer")


def stored(client: TestClient, name: str) -> str:
    """Train a classifier and register it as `name`; the id of its job."""
    model = train_on_labels(names_per_row(["dog", "cat", "fox"]), 3)
    engine = make_engine(client.app.state.settings.database_url)  # type: ignore[attr-defined]
    try:
        with make_session_factory(engine)() as session:
            return store_model(session, name, model, epochs=(1,))
    finally:
        engine.dispose()


def test_every_operation_that_predicts_is_dispatched_directly(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    predicting = {
        operation["operationId"]
        for path, operations in schema["paths"].items()
        if path.endswith(PREDICTING)
        for operation in operations.values()
    }
    direct = {
        route.route.unique_id
        for route in client.app.router.routes  # type: ignore[attr-defined]
        if isinstance(route, DirectRoute)
    }

    assert len(predicting) == 7
    assert direct == predicting


def test_single_rows_on_the_loop_answer_as_a_large_batch_in_the_thread_pool(
    client: TestClient,
) -> None:
    job_id = stored(client, "pets")
    rows = np.tile(RAW_INPUTS, (2, 1)).tolist()
    assert len(rows) > INLINE_ROWS

    for path, extra in (
        ("/v1/models/pets/predict", {}),
        (f"/v1/jobs/{job_id}/predict", {"epoch": 1}),
    ):
        batch = client.post(path, json={"inputs": rows, **extra})
        assert batch.status_code == 200, batch.text
        singles = [client.post(path, json={"inputs": [row], **extra}).json() for row in rows[:5]]

        answer = batch.json()
        for index, single in enumerate(singles):
            # BLAS may sum a 1-row product in another order than a 120-row one.
            np.testing.assert_allclose(single["outputs"], [answer["outputs"][index]], rtol=1e-12)
            np.testing.assert_allclose(
                single["probabilities"], [answer["probabilities"][index]], rtol=1e-12
            )
            assert single["labels"] == [answer["labels"][index]]


def test_a_malformed_model_name_is_refused_naming_the_path_parameter(client: TestClient) -> None:
    response = client.post("/v1/models/not a name!/predict", json={"inputs": [[1, 2]]})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "name" in response.text


def test_another_method_on_a_prediction_path_is_405(client: TestClient) -> None:
    stored(client, "pets")

    assert client.get("/v1/models/pets/predict").status_code == 405


def test_a_name_validated_once_is_not_trusted_for_another_and_the_memory_stays_bounded(
    client: TestClient,
) -> None:
    stored(client, "pets")
    for _ in range(3):
        assert client.post("/v1/models/pets/predict", json={"inputs": [[1, 2]]}).status_code == 200
    refused = client.post("/v1/models/pets!/predict", json={"inputs": [[1, 2]]})
    assert refused.status_code == 422 and "name" in refused.text

    (route,) = [
        route
        for route in client.app.router.routes  # type: ignore[attr-defined]
        if isinstance(route, DirectRoute) and route.route.unique_id == "predict_model"
    ]
    for index in range(VALID_PATHS_KEPT + 10):
        values, errors = route._path_values({"name": f"model-{index}"})
        assert values == {"name": f"model-{index}"} and not errors
    assert len(route._valid_paths) <= VALID_PATHS_KEPT
    assert client.post("/v1/models/pets/predict", json={"inputs": [[1, 2]]}).status_code == 200
