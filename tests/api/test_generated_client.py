"""A Python client generated from the live service's /openapi.json trains XOR and predicts
with it, against `backprop serve` and its worker as real processes: the document is
precise enough to drive the service, and the client's names are the chosen ones
(`create_dataset`, `PredictRequest`), not FastAPI's path-and-method defaults."""

import importlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx2
import pytest

from tests.helpers import example_spec, running_service

PACKAGE = "backprop_client"
XOR_INPUTS = [[1, 1], [-1, 1], [1, -1], [-1, -1]]
XOR_TARGETS = [1, 0, 0, 1]
# Operation ids a client turns into modules, by tag; and some of its model classes.
OPERATIONS = {
    "datasets": ["create_dataset", "create_dataset_from_csv", "list_dataset_rows"],
    "jobs": [
        "create_job",
        "get_job",
        "list_jobs",
        "get_job_history",
        "predict_job",
        "evaluate_job",
    ],
    "models": ["list_models", "predict_model", "set_model_alias", "evaluate_model"],
}
MODELS = [
    "DatasetFromGenerator",
    "DatasetFromRows",
    "DatasetPage",
    "EvaluateRequest",
    "EvaluateResponse",
    "JobCreate",
    "JobEvaluateRequest",
    "JobPredictRequest",
    "PredictRequest",
    "PredictResponse",
]
TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def base_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """`backprop serve` with one worker process, on a database of this test's own."""
    with running_service(database_url, tmp_path / "serve.log", workers=1) as server:
        yield server.base_url


@pytest.fixture
def client_package(base_url: str, tmp_path: Path) -> Iterator[ModuleType]:
    """The package openapi-python-client generates from the running service's document."""
    document = tmp_path / "openapi.json"
    document.write_bytes(httpx2.get(f"{base_url}/openapi.json").raise_for_status().content)
    config = tmp_path / "client.yaml"
    # No post hooks: they would run ruff over the generated code, not our concern here.
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    generator = Path(sys.executable).with_name("openapi-python-client")
    command: list[str | Path] = [generator, "generate", "--path", document, "--config", config]
    result = subprocess.run(
        [*command, "--meta", "none", "--output-path", tmp_path / "generated" / PACKAGE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # It warns on stdout about the parts of a document it cannot turn into code.
    assert result.returncode == 0 and "Warning" not in result.stdout, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path / "generated"))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path / "generated"))
        for name in [name for name in sys.modules if name.partition(".")[0] == PACKAGE]:
            del sys.modules[name]


def operation(tag: str, name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")


def test_the_generated_client_has_the_chosen_names(client_package: ModuleType) -> None:
    api = Path(client_package.__file__ or "").parent / "api"
    modules = {path.stem for path in api.glob("*/*.py")} - {"__init__"}
    models = importlib.import_module(f"{PACKAGE}.models")

    for tag, names in OPERATIONS.items():
        for name in names:
            assert callable(operation(tag, name).sync)
    assert [m for m in modules if "v1" in m or m.endswith(("_get", "_post", "_put"))] == []
    assert [name for name in MODELS if not hasattr(models, name)] == []
    assert [name for name in models.__all__ if "V1" in name or name.startswith("Body")] == []


def test_a_generated_client_trains_xor_and_predicts(
    base_url: str, client_package: ModuleType
) -> None:
    models = importlib.import_module(f"{PACKAGE}.models")
    spec = example_spec("xor-tanh")
    with client_package.Client(base_url=base_url, raise_on_unexpected_status=True) as client:
        trained, prediction, at_snapshot, evaluation = train_and_predict(client, models, spec)

    assert trained.status == models.JobStatus.SUCCEEDED, trained
    assert isinstance(prediction, models.PredictResponse), prediction
    assert (prediction.model.name, prediction.model.version) == ("xor-client", 1)
    outputs = [row[0] for row in prediction.outputs]
    assert [output > 0.5 for output in outputs] == [target == 1 for target in XOR_TARGETS], outputs
    assert at_snapshot.outputs == prediction.outputs
    # The generator's classes are the integers 0 and 1, and stay integers on the way back.
    assert prediction.classes == [0, 1] and prediction.labels == XOR_TARGETS
    assert isinstance(evaluation, models.EvaluateResponse), evaluation
    assert evaluation.n_samples == 4 and evaluation.metrics["accuracy"] == 1.0
    assert evaluation.confusion_matrix.classes == [0, 1]
    assert evaluation.confusion_matrix.matrix == [[2, 0], [0, 2]]


def train_and_predict(client: Any, models: ModuleType, spec: dict[str, Any]) -> tuple[Any, ...]:
    """Create the XOR dataset, train a job registering `xor-client`, wait for it, predict
    with the model and with the job's last snapshot, evaluate the model on the dataset:
    the client's calls only."""
    dataset = operation("datasets", "create_dataset").sync(
        client=client,
        body=models.DatasetFromGenerator(
            name="xor",
            generator=models.GeneratorSpec(kind=models.GeneratorSpecKind.XOR, n_samples=4),
        ),
    )
    assert isinstance(dataset, models.DatasetRead), dataset
    job = operation("jobs", "create_job").sync(
        client=client,
        body=models.JobCreate(
            dataset_id=dataset.id,
            model_name="xor-client",
            network=models.NetworkSpecIn.from_dict(spec["network"]),
            training=models.TrainingSpecIn.from_dict(spec["training"]),
            checkpoint_every=100,
        ),
    )
    assert isinstance(job, models.JobRead), job
    # The worker process trains it; pytest's timeout bounds the wait.
    while job.status not in TERMINAL:
        time.sleep(0.1)
        job = operation("jobs", "get_job").sync(job.id, client=client)
    if job.status != models.JobStatus.SUCCEEDED:
        return job, None, None, None
    prediction = operation("models", "predict_model").sync(
        "xor-client", client=client, body=models.PredictRequest(inputs=XOR_INPUTS)
    )
    at_snapshot = operation("jobs", "predict_job").sync(
        job.id, client=client, body=models.JobPredictRequest(inputs=XOR_INPUTS, epoch=500)
    )
    evaluation = operation("models", "evaluate_model").sync(
        "xor-client", client=client, body=models.EvaluateRequest(dataset_id=dataset.id)
    )
    return job, prediction, at_snapshot, evaluation
