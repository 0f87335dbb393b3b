"""Every limit is answered with a 4xx problem naming its setting and value, before the
work or memory it bounds is spent; oversized bodies are refused without being read."""

import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.predictions import RESOLVE_TTL_SECONDS
from service.config import Settings
from service.core import Model, Parameters, RunSpec
from service.db import SnapshotRow, make_engine, make_session_factory, registry
from tests.api.test_bad_input import assert_problem, job_body
from tests.helpers import XOR_DATASET, free_port, row_counts

MB = 1024 * 1024


def assert_limit(response: Any, status: int, setting: str, value: int) -> dict[str, Any]:
    """A problem whose detail names the limit's setting and its value."""
    problem = assert_problem(response, status)
    assert setting in problem["detail"], problem
    assert str(value) in problem["detail"], problem
    return problem


@contextmanager
def limited(migrated_url: str, **limits: Any) -> Iterator[TestClient]:
    """A client of an app with these limits, on the test's database."""
    settings = Settings(database_url=migrated_url, **limits)
    with TestClient(create_app(settings)) as client:
        yield client


def create_dataset(client: TestClient, body: dict[str, Any] = XOR_DATASET) -> str:
    response = client.post("/v1/datasets", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# ----- the body ---------------------------------------------------------------------------


def streamed(size: int) -> Iterator[bytes]:
    """`size` bytes of a JSON body sent without a Content-Length."""
    yield b'{"inputs": ['
    for _ in range(size // 1024 + 1):
        yield b" " * 1024


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("/v1/datasets", "announced"),
        # FastAPI reads this body itself, and answers any error but its own while it
        # reads one with a 400.
        ("/v1/datasets", "streamed"),
        # The predict routes read their bodies themselves.
        ("/v1/models/any/predict", "streamed"),
    ],
)
def test_a_body_above_the_limit_is_one_problem_whichever_way_it_arrives(
    migrated_url: str, path: str, sent: str
) -> None:
    with limited(migrated_url, max_body_bytes=10_000) as client:
        if sent == "announced":
            response = client.post(path, content=b" " * 10_001)
        else:
            response = client.post(path, content=streamed(10_000))

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["connection"] == "close"
    assert response.json() == {
        "type": "about:blank",
        "title": "Payload too large",
        "status": 413,
        "detail": "request body is larger than the limit of 10000 bytes (BACKPROP_MAX_BODY_BYTES)",
    }


# ----- jobs -------------------------------------------------------------------------------


def test_epochs_times_training_samples_above_the_limit_are_refused(migrated_url: str) -> None:
    with limited(migrated_url, max_epoch_samples=100) as client:
        xor = create_dataset(client)  # 4 samples
        body = job_body(xor)

        body["training"]["epochs"] = 25
        assert client.post("/v1/jobs", json=body).status_code == 202
        body["training"]["epochs"] = 26
        refused = client.post("/v1/jobs", json=body)

        problem = assert_limit(refused, 422, "BACKPROP_MAX_EPOCH_SAMPLES", 100)
        assert problem["errors"][0]["loc"] == ["body", "training", "epochs"]
        assert "at most 25" in problem["errors"][0]["msg"]


def test_samples_held_out_for_validation_do_not_count_as_training_samples(
    migrated_url: str,
) -> None:
    with limited(migrated_url, max_epoch_samples=100) as client:
        body = job_body(create_dataset(client))
        body["training"]["validation_split"] = 0.5  # 2 of the 4 samples train

        body["training"]["epochs"] = 50
        assert client.post("/v1/jobs", json=body).status_code == 202
        body["training"]["epochs"] = 51
        assert_limit(client.post("/v1/jobs", json=body), 422, "BACKPROP_MAX_EPOCH_SAMPLES", 100)


def test_a_job_beyond_the_active_jobs_limit_is_refused_until_one_ends(migrated_url: str) -> None:
    with limited(migrated_url, max_active_jobs=2) as client:
        body = job_body(create_dataset(client))
        first, second = (client.post("/v1/jobs", json=body) for _ in range(2))
        assert [first.status_code, second.status_code] == [202, 202]
        before = row_counts(migrated_url)

        refused = client.post("/v1/jobs", json=body)

        assert_limit(refused, 429, "BACKPROP_MAX_ACTIVE_JOBS", 2)
        assert row_counts(migrated_url) == before
        client.post(f"/v1/jobs/{first.json()['id']}/cancel").raise_for_status()
        assert client.post("/v1/jobs", json=body).status_code == 202


def test_the_limit_checks_come_before_the_active_jobs_count(migrated_url: str) -> None:
    # A job that could never run is told so, not told to come back later.
    with limited(migrated_url, max_active_jobs=0, max_epochs=5) as client:
        body = job_body(create_dataset(client))

        assert_limit(client.post("/v1/jobs", json=body), 422, "BACKPROP_MAX_EPOCHS", 5)


# ----- datasets ---------------------------------------------------------------------------


def test_rows_wider_than_the_feature_limit_are_refused(migrated_url: str) -> None:
    with limited(migrated_url, max_features=3) as client:
        body = {"name": "wide", "inputs": [[0, 1, 2, 3], [3, 2, 1, 0]], "targets": [[0], [1]]}

        problem = assert_limit(
            client.post("/v1/datasets", json=body), 422, "BACKPROP_MAX_FEATURES", 3
        )
        assert problem["errors"][0]["loc"] == ["body", "inputs"]


# ----- trace ------------------------------------------------------------------------------


def test_a_trace_of_a_huge_network_is_refused_before_it_is_built(client: TestClient) -> None:
    # 30 hidden layers of 4096: half a billion parameters (4 GB as float64) to be built as
    # zeros if the request got past the limit; the body itself is tiny.
    layers = [1, *[4096] * 30, 1]
    tiny = {"weights": [[0.0]], "bias": [0.0]}
    body = {
        "network": {"layers": layers},
        "parameters": {"layers": [tiny] * (len(layers) - 1)},
        "input": [1.0],
        "target": [1.0],
    }

    limit = Settings().max_parameters
    problem = assert_limit(
        client.post("/v1/trace", json=body), 422, "BACKPROP_MAX_PARAMETERS", limit
    )

    assert problem["errors"][0]["loc"] == ["body", "network", "layers"]


# ----- predictions ------------------------------------------------------------------------

WIDE_OUTPUTS = {"network": {"layers": [2, 4, 50]}, "training": {"epochs": 10}}
WIDE_PARAMETERS = 3 * 4 + 5 * 50


def register_zero_model(client: TestClient, url: str, spec: dict[str, Any], name: str) -> str:
    """Submit a job for `spec` through the API, then store a snapshot and a model version
    of it straight in the database, as a worker does; return the job id."""
    n_inputs, n_outputs = spec["network"]["layers"][0], spec["network"]["layers"][-1]
    dataset = create_dataset(
        client,
        {"name": "d", "inputs": [[0.0] * n_inputs] * 2, "targets": [[0.0] * n_outputs] * 2},
    )
    job = client.post("/v1/jobs", json={"dataset_id": dataset, "model_name": name, **spec})
    assert job.status_code == 202, job.text
    network = RunSpec.from_dict(spec).network
    weights = Model(network, Parameters.zeros(network.layers)).to_bytes()
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            session.add(SnapshotRow(job_id=job.json()["id"], epoch=10, weights=weights))
            registry.register_version(session, name, job.json()["id"], 10, weights)
            session.commit()
    finally:
        engine.dispose()
    return str(job.json()["id"])


@pytest.mark.parametrize(
    ("limits", "setting", "value"),
    [
        (
            {"max_predict_row_parameters": 10 * WIDE_PARAMETERS},
            "BACKPROP_MAX_PREDICT_ROW_PARAMETERS",
            10 * WIDE_PARAMETERS,
        ),
        ({"max_predict_outputs": 10 * 50}, "BACKPROP_MAX_PREDICT_OUTPUTS", 10 * 50),
    ],
)
def test_a_prediction_above_a_limit_is_refused_on_both_routes(
    migrated_url: str, limits: dict[str, int], setting: str, value: int
) -> None:
    with limited(migrated_url, **limits) as client:
        job_id = register_zero_model(client, migrated_url, WIDE_OUTPUTS, "wide")
        for path in ("/v1/models/wide/predict", f"/v1/jobs/{job_id}/predict"):
            allowed = client.post(path, json={"inputs": [[0.5, 0.5]] * 10})
            refused = client.post(path, json={"inputs": [[0.5, 0.5]] * 11})

            assert allowed.status_code == 200, allowed.text
            problem = assert_limit(refused, 422, setting, value)
            assert problem["errors"] == [
                {"loc": ["body", "inputs"], "msg": "at most 10 rows for this model"}
            ]


def test_a_refused_prediction_does_not_stop_the_latest_version_from_refreshing(
    migrated_url: str,
) -> None:
    spec = {"network": {"layers": [2, 1]}, "training": {"epochs": 10}}
    with limited(migrated_url, max_predict_outputs=5) as client:
        register_zero_model(client, migrated_url, spec, "small")
        one_row = {"inputs": [[0.5, 0.5]]}
        assert client.post("/v1/models/small/predict", json=one_row).json()["model"]["version"]
        register_zero_model(client, migrated_url, spec, "small")  # version 2, "elsewhere"
        time.sleep(RESOLVE_TTL_SECONDS * 1.2)

        # The first request after the lookup went stale is refused...
        refused = client.post("/v1/models/small/predict", json={"inputs": [[0.5, 0.5]] * 6})
        assert refused.status_code == 422
        # ...and the next ones still look the latest version up again.
        deadline, version = time.monotonic() + 5, 1
        while version != 2 and time.monotonic() < deadline:
            version = client.post("/v1/models/small/predict", json=one_row).json()["model"][
                "version"
            ]
            time.sleep(0.05)
        assert version == 2


# ----- a real server ----------------------------------------------------------------------

APP = "service.api.app:create_app"
SERVER_LIMITS = {"BACKPROP_MAX_BODY_BYTES": str(MB), "BACKPROP_MAX_ACTIVE_JOBS": "3"}


@pytest.fixture
def server(migrated_url: str, tmp_path: Path) -> Iterator[str]:
    """uvicorn serving the app in a process of its own (no workers); its base URL."""
    port = free_port()
    env = {**os.environ, "BACKPROP_DATABASE_URL": migrated_url, **SERVER_LIMITS}
    log = tmp_path / "uvicorn.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", APP, "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx2.get(f"{base_url}/ready").status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def chunked(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    chunk = b" " * size
    for _ in range(total // size):
        yield b"%x\r\n%b\r\n" % (size, chunk)
    yield b"0\r\n\r\n"


def plain(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    chunk = b" " * size
    for _ in range(total // size):
        yield chunk


def stream_until_answered(base_url: str, head: bytes, body: Iterator[bytes]) -> tuple[int, bytes]:
    """Send `head`, then `body` as fast as the server takes it, until the server closes the
    connection or has taken all of it. Returns the bytes it took and the answer it sent."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        sent, pending, answer = 0, b"", b""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if not pending:
                pending = next(body, b"")
                if not pending:
                    return sent, answer
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 1)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    return sent, answer
                if not data:
                    return sent, answer
                answer += data
            elif writable:
                try:
                    taken = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    continue  # the answer may still be waiting to be read
                sent, pending = sent + taken, pending[taken:]
        pytest.fail(f"the server neither answered nor closed; it took {sent} bytes")


REQUEST = b"POST %b HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    ("head", "body", "status"),
    [
        (REQUEST % b"/v1/datasets" + b"Content-Length: %d\r\n\r\n" % (100 * MB), plain, 413),
        (REQUEST % b"/v1/datasets" + b"Transfer-Encoding: chunked\r\n\r\n", chunked, 413),
        # Answered without reading the body at all: the server must not drain it either.
        (REQUEST % b"/v1/nothing-here" + b"Transfer-Encoding: chunked\r\n\r\n", chunked, 404),
    ],
    ids=["content-length", "chunked", "chunked-to-an-unknown-route"],
)
def test_a_100_mb_body_is_refused_without_being_read_whole(
    server: str, head: bytes, body: Any, status: int
) -> None:
    sent, answer = stream_until_answered(server, head, body(100 * MB))

    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert b"application/problem+json" in answer
    assert b"connection: close" in answer.lower()
    # The server closed the connection after at most the 1 MB limit plus what the
    # sockets' buffers held: nowhere near the 100 MB the client had to send.
    assert sent < 20 * MB, sent
    assert httpx2.get(f"{server}/health").json() == {"status": "ok"}
    created = httpx2.post(f"{server}/v1/datasets", json=XOR_DATASET)
    assert created.status_code == 201, created.text


def test_concurrent_submissions_never_exceed_the_active_jobs_limit(server: str) -> None:
    dataset_id = httpx2.post(f"{server}/v1/datasets", json=XOR_DATASET).json()["id"]
    start = threading.Barrier(12)
    statuses: list[int] = []

    def submit() -> None:
        with httpx2.Client(base_url=server, timeout=60) as client:
            start.wait()
            statuses.append(client.post("/v1/jobs", json=job_body(dataset_id)).status_code)

    threads = [threading.Thread(target=submit) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [202] * 3 + [429] * 9
