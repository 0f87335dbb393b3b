"""The Open Inference Protocol v2, driven by Triton's own client (`tritonclient.http`)
against `backprop serve` as a real process: health, model metadata and readiness, and
inference with FP32 and FP64 tensors (JSON and binary), equal to the native predict.
Then the protocol's errors and the keys, in process."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from tritonclient.utils import InferenceServerException

from service.api.app import create_app
from service.config import Settings
from tests.api.protocols.test_mlflow import PETS_CSV, train
from tests.helpers import Server, job_finished, running_service

ROWS = np.array([[4.5, 25.0], [30.0, 60.0], [12.0, 40.0]])
KEY, READ_KEY = "v2-test-key-0123456789", "v2-read-key-9876543210"


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    with running_service(database_url, tmp_path / "serve.log", workers=1) as server:
        with httpx2.Client(base_url=server.base_url, timeout=30) as client:
            uploaded = client.post(
                "/v1/datasets/csv",
                files={"file": ("pets.csv", PETS_CSV.encode(), "text/csv")},
                data={"name": "pets", "label_column": "kind"},
            )
            assert uploaded.status_code == 201, uploaded.text
            for name, layers in (("pets", [2, 6, 2]), ("pets", [2, 6, 1])):
                job = client.post(
                    "/v1/jobs",
                    json={
                        "dataset_id": uploaded.json()["id"],
                        "model_name": name,
                        "network": {"layers": layers, "hidden_activation": "tanh"},
                        "training": {"optimizer": "adam", "learning_rate": 0.05, "epochs": 20},
                    },
                )
                assert job.status_code == 202, job.text
                assert job_finished(client, job.json()["id"])["status"] == "succeeded"
        yield server


def native(server: Server, rows: np.ndarray, version: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": rows.tolist()}
    if version is not None:
        body["version"] = version
    answer: dict[str, Any] = (
        httpx2.post(f"{server.base_url}/v1/models/pets/predict", json=body)
        .raise_for_status()
        .json()
    )
    return answer


def test_tritonclient_checks_health_metadata_and_infers_as_the_native_predict(
    server: Server,
) -> None:
    client = triton.InferenceServerClient(server.base_url.removeprefix("http://"))
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("pets")
        assert client.is_model_ready("pets", model_version="1")
        assert not client.is_model_ready("pets", model_version="7")
        assert not client.is_model_ready("no-such-model")
        assert client.get_server_metadata()["name"] == "backprop-service"

        metadata = client.get_model_metadata("pets")
        assert metadata["name"] == "pets"
        assert metadata["versions"] == ["1", "2"]
        assert metadata["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 2]}]
        # Version 2 has one sigmoid output: two probabilities, one per class.
        assert metadata["outputs"] == [
            {"name": "outputs", "datatype": "FP64", "shape": [-1, 1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]},
            {"name": "labels", "datatype": "BYTES", "shape": [-1]},
        ]
        first = client.get_model_metadata("pets", model_version="1")
        assert first["outputs"][0]["shape"] == [-1, 2]

        for datatype, dtype, binary in (
            ("FP64", np.float64, False),
            ("FP32", np.float32, False),
            ("FP64", np.float64, True),
            ("FP32", np.float32, True),
        ):
            rows = ROWS.astype(dtype)
            tensor = triton.InferInput("input", list(rows.shape), datatype)
            tensor.set_data_from_numpy(rows, binary_data=binary)
            wanted = [
                triton.InferRequestedOutput(name, binary_data=binary)
                for name in ("outputs", "probabilities", "labels")
            ]
            for version in ("1", "2"):
                result = client.infer(
                    "pets", [tensor], model_version=version, outputs=wanted, request_id="r-7"
                )
                expected = native(server, rows.astype(np.float64), int(version))
                where = f"{datatype} binary={binary} version {version}"
                assert result.get_response()["model_version"] == version, where
                assert result.get_response()["id"] == "r-7", where
                assert np.array_equal(result.as_numpy("outputs"), expected["outputs"]), where
                assert np.array_equal(
                    result.as_numpy("probabilities"), expected["probabilities"]
                ), where
                labels = result.as_numpy("labels").tolist()
                assert labels == expected["labels"], where

        # Without a version and without requested outputs: the latest, every output.
        tensor = triton.InferInput("input", list(ROWS.shape), "FP64")
        tensor.set_data_from_numpy(ROWS)
        result = client.infer("pets", [tensor])
        assert result.get_response()["model_version"] == "2"
        assert [o["name"] for o in result.get_response()["outputs"]] == [
            "outputs",
            "probabilities",
            "labels",
        ]

        with pytest.raises(InferenceServerException, match="datatype 'INT32' is not supported"):
            ints = triton.InferInput("input", [1, 2], "INT32")
            ints.set_data_from_numpy(np.array([[1, 2]], dtype=np.int32), binary_data=False)
            client.infer("pets", [ints])
        with pytest.raises(InferenceServerException, match="not exist"):
            client.get_model_metadata("no-such-model")
    finally:
        client.close()


@pytest.fixture
def keyed(migrated_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=migrated_url, api_keys=f"{KEY},{READ_KEY}:read")
    with TestClient(create_app(settings)) as client:
        train(client_with_key(client, KEY), migrated_url, "pets", PETS_CSV, label_column="kind")
        client.headers.pop("Authorization")
        yield client


def client_with_key(client: TestClient, key: str) -> TestClient:
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def infer_body(rows: list[list[float]], **extra: Any) -> dict[str, Any]:
    tensor = {"name": "input", "shape": [len(rows), len(rows[0])], "datatype": "FP64"}
    return {"inputs": [{**tensor, "data": rows}], **extra}


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"inputs": []}, 400, "inputs"),
        (infer_body([[1.0, 2.0, 3.0]]), 400, "[rows, 2]"),
        (
            {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]},
            400,
            "unknown input 'x'",
        ),
        (
            {"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP64", "data": [1, 2]}]},
            400,
            "needs 4",
        ),
        (infer_body([[1.0, 2.0]], outputs=[{"name": "logits"}]), 400, "unknown outputs"),
    ],
    ids=["no-inputs", "too-wide", "unknown-input", "too-little-data", "unknown-output"],
)
def test_bad_infer_requests_are_the_protocols_400(
    keyed: TestClient, body: dict[str, Any], status: int, words: str
) -> None:
    response = keyed.post("/v2/models/pets/infer", json=body, headers=bearer(READ_KEY))

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert list(response.json()) == ["error"]
    assert words in response.json()["error"]


def test_unknown_models_and_versions_are_the_protocols_404(keyed: TestClient) -> None:
    for path in (
        "/v2/models/nothing",
        "/v2/models/pets/versions/9",
        "/v2/models/pets/versions/9/ready",
    ):
        response = keyed.get(path, headers=bearer(READ_KEY))
        assert response.status_code == 404, path
        assert list(response.json()) == ["error"], path
    malformed = keyed.get("/v2/models/pets/versions/one", headers=bearer(READ_KEY))
    assert malformed.status_code == 400
    assert "version" in malformed.json()["error"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_health_is_open_and_the_rest_of_v2_needs_a_key(keyed: TestClient) -> None:
    assert keyed.get("/v2/health/live").json() == {"live": True}
    assert keyed.get("/v2/health/ready").json() == {"ready": True}
    for method, path in (
        ("GET", "/v2"),
        ("GET", "/v2/models/pets"),
        ("POST", "/v2/models/pets/infer"),
    ):
        refused = keyed.request(method, path)
        assert refused.status_code == 401, path
        assert "error" in refused.json(), path
        assert refused.headers["www-authenticate"].startswith("Bearer"), path
