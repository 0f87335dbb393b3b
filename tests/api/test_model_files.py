"""Models as files over HTTP: download a trained version or snapshot, upload it under
another name, and the copy, `backprop predict` and onnxruntime answer what the service
answers; a damaged or forged upload is a 422 naming `file` that writes nothing."""

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import onnxruntime
import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.core import Model, Parameters
from service.core.datasets import generate
from service.core.serialization import pack
from service.formats.native import MANIFEST, PAYLOAD
from service.jobs.worker import Worker
from tests.helpers import backprop_command, job_finished, row_counts, running_service
from tests.jobs.worker_helpers import worker_settings

RAW_INPUTS = generate("gaussian", 60, 0.5, 0, 3)[0] * 1000 + 5
LABELS = ["cat", "dog", "fox"]
NAMES = [LABELS[i] for i in generate("gaussian", 60, 0.5, 0, 3)[1].argmax(axis=1)]
JOB = {
    "model_name": "pets",
    "network": {"layers": [2, 8, 3], "hidden_activation": "tanh"},
    "training": {"optimizer": "adam", "learning_rate": 0.05, "epochs": 20, "batch_size": 8},
    "checkpoint_every": 10,
}


def without_model(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in ("model", "epoch")}


def submit(client: TestClient | httpx2.Client) -> str:
    dataset = client.post(
        "/v1/datasets", json={"name": "pets", "inputs": RAW_INPUTS.tolist(), "labels": NAMES}
    )
    job = client.post("/v1/jobs", json={"dataset_id": dataset.json()["id"], **JOB})
    assert job.status_code == 202, job.text
    job_id: str = job.json()["id"]
    return job_id


def test_a_trained_model_downloaded_uploaded_and_run_elsewhere_answers_bit_for_bit(
    database_url: str, tmp_path: Path
) -> None:
    with (
        running_service(database_url, tmp_path / "serve.log", workers=1) as server,
        httpx2.Client(base_url=server.base_url, timeout=30) as client,
    ):
        job = job_finished(client, submit(client))
        assert job["status"] == "succeeded", job
        rows = {"inputs": RAW_INPUTS.tolist()}

        downloaded = client.get("/v1/models/pets/versions/1/download")
        uploaded = client.post(
            "/v1/models/pets-copy/versions",
            files={"file": ("pets-v1.backprop", downloaded.content)},
        )
        original = client.post("/v1/models/pets/predict", json=rows).json()
        copy = client.post("/v1/models/pets-copy/predict", json=rows).json()
        again = client.get("/v1/models/pets-copy/versions/1/download")
        snapshot = client.get(f"/v1/jobs/{job['id']}/snapshots/10/download")
        at_snapshot = client.post(f"/v1/jobs/{job['id']}/predict", json={**rows, "epoch": 10})
        exported = client.get("/v1/models/pets/versions/1/download", params={"format": "onnx"})

    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.headers["content-type"] == "application/vnd.backprop.model+zip"
    assert downloaded.headers["content-disposition"] == 'attachment; filename="pets-v1.backprop"'
    assert downloaded.headers["etag"] == f'"{hashlib.sha256(downloaded.content).hexdigest()}"'
    assert uploaded.status_code == 201, uploaded.text
    version = uploaded.json()
    assert (version["version"], version["source"], version["job_id"], version["epoch"]) == (
        1, "upload", None, None,
    )  # fmt: skip
    assert version["classes"] == LABELS
    # Bit for bit: the same floats, parsed, compared with ==.
    assert without_model(copy) == without_model(original)
    assert original["classes"] == LABELS
    # The uploaded version stores the very payload: its download carries the same checksum.
    assert _manifest(again.content)["sha256"] == _manifest(downloaded.content)["sha256"]

    inputs = tmp_path / "inputs.csv"
    inputs.write_text("".join(f"{x!r},{y!r}\n" for x, y in RAW_INPUTS.tolist()))
    for name, file, expected in (
        ("version", downloaded.content, original),
        ("snapshot", snapshot.content, at_snapshot.json()),
    ):
        path = tmp_path / f"{name}.backprop"
        path.write_bytes(file)
        predicted = subprocess.run(
            backprop_command("predict", str(path), "--data", str(inputs), "--json"),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert predicted.returncode == 0, predicted.stderr
        assert json.loads(predicted.stdout) == without_model(expected), name

    assert snapshot.headers["content-disposition"].endswith('-epoch-10.backprop"')
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"] == "application/onnx"
    session = onnxruntime.InferenceSession(exported.content, providers=["CPUExecutionProvider"])
    (outputs,) = session.run(["outputs"], {"inputs": RAW_INPUTS})
    np.testing.assert_allclose(outputs, original["outputs"], rtol=1e-9, atol=1e-9)


def _manifest(data: bytes) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest: dict[str, Any] = json.loads(archive.read(MANIFEST))
        return manifest


def _rezip(manifest: dict[str, Any], payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(MANIFEST, json.dumps(manifest))
        archive.writestr(PAYLOAD, payload)
    return buffer.getvalue()


def _forged(good: bytes, payload: bytes) -> bytes:
    """`payload` in a file whose manifest's checksum matches it."""
    return _rezip({**_manifest(good), "sha256": hashlib.sha256(payload).hexdigest()}, payload)


def _payload(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read(PAYLOAD)


def _nan_weights(good: bytes) -> bytes:
    model = Model.from_bytes(_payload(good))
    flat = model.parameters.flat.copy()
    flat[0] = np.nan
    return _forged(good, Model(model.spec, Parameters(model.spec.layers, flat)).to_bytes())


def _wrong_shape(good: bytes) -> bytes:
    model = Model.from_bytes(_payload(good))
    network = {**model.spec.to_dict(), "layers": [2, 9, 3]}
    return _forged(good, pack("model", {"network": network}, {"flat": model.parameters.flat}))


def _flipped(good: bytes) -> bytes:
    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0x01
    return bytes(damaged)


def _altered_and_rezipped(good: bytes) -> bytes:
    payload = bytearray(_payload(good))
    payload[-120] ^= 0x01
    return _rezip(_manifest(good), bytes(payload))


BAD_FILES = {
    "flipped-byte": _flipped,
    "altered-rezipped": _altered_and_rezipped,
    "truncated": lambda good: good[: len(good) - 50],
    "not-a-zip": lambda good: b"weight,height\n1,2\n",
    "wrong-format": lambda good: _rezip({**_manifest(good), "format": "keras"}, _payload(good)),
    "newer-version": lambda good: _rezip({**_manifest(good), "format_version": 99}, _payload(good)),
    "nan-weights": _nan_weights,
    "wrong-shape": _wrong_shape,
}


@pytest.fixture
def trained(client: TestClient, settings: Settings) -> bytes:
    """The `pets` model trained by a worker, as its version 1's downloaded file."""
    submit(client)
    with Worker(worker_settings(settings.database_url)) as worker:
        worker.run(threading.Event(), until_idle=True)
    response = client.get("/v1/models/pets/versions/1/download")
    assert response.status_code == 200, response.text
    return response.content


@pytest.mark.parametrize("target", ["fresh-name", "pets"])
@pytest.mark.parametrize("damage", sorted(BAD_FILES))
def test_a_damaged_or_forged_upload_is_refused_naming_the_file_and_writes_nothing(
    client: TestClient, settings: Settings, trained: bytes, damage: str, target: str
) -> None:
    before = row_counts(settings.database_url)

    response = client.post(
        f"/v1/models/{target}/versions", files={"file": ("m.backprop", BAD_FILES[damage](trained))}
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["body", "file"]
    assert row_counts(settings.database_url) == before
    assert client.get(f"/v1/models/{target}/versions/2").status_code == 404


def test_an_upload_becomes_the_next_version_of_an_existing_model(
    client: TestClient, trained: bytes
) -> None:
    uploaded = client.post(
        "/v1/models/pets/versions",
        files={"file": ("pets.backprop", trained)},
        data={"description": "the same weights, again"},
    )
    listed = client.get("/v1/models/pets/versions").json()["items"]

    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["version"] == 2
    assert [(v["version"], v["source"]) for v in listed] == [(2, "upload"), (1, "job")]


def test_an_upload_above_the_upload_limit_is_refused_on_the_stream(
    migrated_url: str, trained: bytes
) -> None:
    from service.api.app import create_app

    settings = Settings(database_url=migrated_url, max_upload_bytes=len(trained) // 2)
    with TestClient(create_app(settings)) as small:
        response = small.post("/v1/models/x/versions", files={"file": ("m", trained)})

    assert response.status_code == 413
    assert "BACKPROP_MAX_UPLOAD_BYTES" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/nobody/versions/1/download",
        "/v1/models/pets/versions/9/download",
        "/v1/jobs/0123456789abcdef0123456789abcdef/snapshots/10/download",
        "JOB/snapshots/11/download",
    ],
)
def test_downloads_of_what_does_not_exist_are_404(
    client: TestClient, trained: bytes, path: str
) -> None:
    job_id = client.get("/v1/jobs").json()["items"][0]["id"]

    response = client.get(path.replace("JOB", f"/v1/jobs/{job_id}"), params={"format": "onnx"})

    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"


BLOCKED_ONNX = """
import sys, threading
sys.modules["onnx"] = None  # as if the [onnx] extra were not installed
from fastapi.testclient import TestClient
from service.api.app import create_app
from service.config import Settings
from service.core import Model, Parameters, RunSpec
from service.db import make_engine, make_session_factory, registry
spec = RunSpec.from_dict({"network": {"layers": [2, 1]}}).network
model = Model(spec, Parameters.zeros(spec.layers))
engine = make_engine(sys.argv[1])
with make_session_factory(engine).begin() as session:
    registry.register_version(session, "m", None, None, model.to_bytes())
engine.dispose()
with TestClient(create_app(Settings(database_url=sys.argv[1]))) as client:
    onnx = client.get("/v1/models/m/versions/1/download", params={"format": "onnx"})
    native = client.get("/v1/models/m/versions/1/download")
print(onnx.status_code, onnx.headers["content-type"], native.status_code)
print(onnx.json()["detail"])
"""


def test_without_the_onnx_extra_an_onnx_download_says_how_to_enable_it(migrated_url: str) -> None:
    answered = subprocess.run(
        [sys.executable, "-c", BLOCKED_ONNX, migrated_url],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "BACKPROP_LOG_LEVEL": "ERROR"},
    )  # fmt: skip

    assert answered.returncode == 0, answered.stderr
    status, detail = answered.stdout.splitlines()
    assert status == "501 application/problem+json 200"
    assert "pip install 'backprop-service[onnx]'" in detail


def test_the_openapi_document_shows_the_file_routes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    version_download = paths["/v1/models/{name}/versions/{version}/download"]["get"]
    snapshot_download = paths["/v1/jobs/{job_id}/snapshots/{epoch}/download"]["get"]
    upload = paths["/v1/models/{name}/versions"]["post"]

    assert version_download["operationId"] == "download_model_version"
    assert snapshot_download["operationId"] == "download_job_snapshot"
    assert upload["operationId"] == "upload_model_version"
    for download in (version_download, snapshot_download):
        assert set(download["responses"]["200"]["content"]) == {
            "application/vnd.backprop.model+zip",
            "application/onnx",
        }
        assert {"404", "422", "501"} <= set(download["responses"])
        (file_format,) = [p for p in download["parameters"] if p["name"] == "format"]
        assert file_format["schema"]["$ref"].endswith("/FileFormat")
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"201", "413", "422"} <= set(upload["responses"])
    read = schema["components"]["schemas"]["ModelVersionRead"]
    assert read["examples"][0]["source"] == "job"
    assert "uploaded model file" in read["properties"]["epoch"]["description"]
