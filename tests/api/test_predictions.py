"""Predictions in the user's terms over HTTP: class names and per-class probabilities from
models trained on labels, raw units from models that scale, and models stored before
either answering exactly as they did. Then the model resolver on a real database: what it
answers from the cache, and how soon it sees what another process changed in the registry."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from service.api.predictions import RESOLVE_TTL_SECONDS, ModelCache, ModelResolver
from service.config import Settings
from service.core import Model, Parameters, RunSpec, Trainer
from service.core.datasets import generate
from service.core.labels import ClassName, Labels
from service.core.network import predict
from service.core.serialization import pack
from service.db import SnapshotRow, make_engine, make_session_factory, registry
from service.db.datasets import create_dataset
from service.db.jobs import create_job
from service.errors import NotFound
from service.jobs.worker import Worker
from tests.jobs.worker_helpers import worker_settings

SPEC = RunSpec.from_dict({"network": {"layers": [2, 1]}, "training": {"epochs": 1}})
# Features far from unit scale, as users upload them: the model's own preprocessing
# must bring them there, at training and inside every prediction.
RAW_INPUTS = generate("gaussian", 60, 0.5, 0, 3)[0] * 1000 + 5


def store_model(
    session: Session, name: str, model: Model | bytes, epochs: tuple[int, ...] = ()
) -> str:
    """Register `model` (or a blob as stored) as the next version of `name`, from a job
    of its own that has the same weights as its snapshots at `epochs`; the job's id."""
    blob = model if isinstance(model, bytes) else model.to_bytes()
    dataset = create_dataset(session, "d", np.zeros((2, 2)), np.zeros((2, 1)), {})
    job = create_job(session, dataset.id, SPEC, name, 1)
    for epoch in epochs:
        session.add(SnapshotRow(job_id=job.id, epoch=epoch, weights=blob))
    registry.register_version(session, name, job.id, max(epochs, default=1), blob)
    session.commit()
    return job.id


def train_on_labels(values: list[ClassName], width: int) -> Model:
    """A model trained on RAW_INPUTS with one label per row (softmax, or sigmoid for width 1)."""
    labels = Labels.from_values(values)
    output = "sigmoid" if width == 1 else "softmax"
    spec = RunSpec.from_dict(
        {
            "network": {"layers": [2, 8, width], "output_activation": output},
            "training": {
                "loss": "binary_crossentropy" if width == 1 else "categorical_crossentropy",
                "optimizer": "adam",
                "learning_rate": 0.05,
                "epochs": 20,
                "batch_size": 16,
            },
        }
    )
    trainer = Trainer(spec, RAW_INPUTS, labels.targets_for(spec.network), classes=labels.classes)
    for _ in trainer.run():
        pass
    return trainer.model()


def names_per_row(names: list[ClassName]) -> list[ClassName]:
    """RAW_INPUTS' gaussian classes named by `names` (the first two only for two names)."""
    indices = generate("gaussian", 60, 0.5, 0, 3)[1].argmax(axis=1)
    return [names[min(i, len(names) - 1)] for i in indices]


@pytest.mark.parametrize(
    ("names", "width"),
    [
        (["dog", "cat", "fox"], 3),
        ([11, 3, 7], 3),
        ([True, False], 1),
        (["yes", "no"], 2),
    ],
    ids=["strings", "integers", "booleans-sigmoid", "strings-softmax-of-two"],
)
def test_a_model_trained_on_labels_predicts_class_names_and_their_probabilities(
    client: TestClient, db_session: Session, names: list[ClassName], width: int
) -> None:
    model = train_on_labels(names_per_row(names), width)
    store_model(db_session, "pets", model)
    rows = RAW_INPUTS[:12]

    response = client.post("/v1/models/pets/predict", json={"inputs": rows.tolist()})

    assert response.status_code == 200, response.text
    body = response.json()
    classes = sorted(names)
    outputs = model.predict(rows)
    expected = np.hstack([1 - outputs, outputs]) if width == 1 else outputs
    assert body["classes"] == classes
    assert np.allclose(body["outputs"], outputs, rtol=0, atol=1e-12)
    assert np.allclose(body["probabilities"], expected, rtol=0, atol=1e-12)
    assert body["labels"] == [classes[i] for i in expected.argmax(axis=1)]
    # JSON keeps the type: 1 is not true, "3" is not 3.
    assert {type(label) for label in body["labels"]} <= {type(name) for name in names}
    assert body["model"] == {"name": "pets", "version": 1}


@pytest.mark.parametrize(
    "names", [["dog", "cat", "fox"], [11, 3, 7], [True, False]], ids=["strings", "ints", "bools"]
)
def test_labels_sent_to_the_api_come_back_from_predict_and_evaluate(
    client: TestClient, settings: Settings, names: list[ClassName]
) -> None:
    values = names_per_row(names)
    dataset = client.post(
        "/v1/datasets", json={"name": "pets", "inputs": RAW_INPUTS.tolist(), "labels": values}
    ).json()
    job = client.post(
        "/v1/jobs",
        json={
            "dataset_id": dataset["id"],
            "model_name": "pets",
            "network": {"layers": [2, 8, len(names)]},
            "training": {"optimizer": "adam", "learning_rate": 0.05, "epochs": 30},
        },
    )
    assert job.status_code == 202, job.text
    with Worker(worker_settings(settings.database_url)) as worker:
        worker.run(threading.Event(), until_idle=True)

    predicted = client.post("/v1/models/pets/predict", json={"inputs": RAW_INPUTS.tolist()})
    evaluated = client.post("/v1/models/pets/evaluate", json={"dataset_id": dataset["id"]})

    assert predicted.status_code == 200, predicted.text
    body = predicted.json()
    assert body["classes"] == sorted(names)
    assert [type(label) for label in body["labels"]] == [type(names[0])] * len(values)
    hits = sum(label == value for label, value in zip(body["labels"], values, strict=True))
    # Trained on the gaussian clusters: most rows come back with their own class name.
    assert hits > 0.8 * len(values)
    assert evaluated.status_code == 200, evaluated.text
    matrix = evaluated.json()["confusion_matrix"]
    assert matrix["classes"] == sorted(names)
    assert np.trace(matrix["matrix"]) == hits


def test_a_model_version_describes_its_task_classes_and_preprocessing(
    client: TestClient, db_session: Session
) -> None:
    store_model(db_session, "pets", train_on_labels(names_per_row(["dog", "cat", "fox"]), 3))

    version = client.get("/v1/models/pets/versions/1").json()

    assert version["task"] == "classification"
    assert version["classes"] == ["cat", "dog", "fox"]
    assert version["preprocessing"] == {"inputs": "standardize", "targets": "none"}
    assert version["feature_names"] is None


def test_a_regression_model_predicts_in_the_targets_own_units(
    client: TestClient, db_session: Session
) -> None:
    targets = RAW_INPUTS[:, :1] * 3 - RAW_INPUTS[:, 1:] + 40_000
    spec = RunSpec.from_dict(
        {
            "network": {"layers": [2, 8, 1]},
            "training": {"epochs": 20, "optimizer": "adam", "learning_rate": 0.05},
            "preprocessing": {"inputs": "standardize", "targets": "standardize"},
        }
    )
    trainer = Trainer(spec, RAW_INPUTS, targets)
    for _ in trainer.run():
        pass
    store_model(db_session, "price", trainer.model())

    body = client.post("/v1/models/price/predict", json={"inputs": RAW_INPUTS[:5].tolist()}).json()
    version = client.get("/v1/models/price/versions/1").json()

    assert set(body) == {"outputs", "model"}
    assert np.allclose(body["outputs"], trainer.model().predict(RAW_INPUTS[:5]), rtol=1e-12)
    # Raw units: near the targets' scale of tens of thousands, not a standardized one.
    assert np.abs(np.array(body["outputs"]) - targets[:5]).max() < np.abs(targets[:5]).max()
    assert (version["task"], version["classes"]) == ("regression", None)
    assert version["preprocessing"] == {"inputs": "standardize", "targets": "standardize"}


def test_a_model_stored_before_classes_and_preprocessing_answers_exactly_as_before(
    client: TestClient, db_session: Session
) -> None:
    network = RunSpec.from_dict(
        {
            "network": {"layers": [2, 3], "output_activation": "softmax", "init": "normal"},
            "training": {"loss": "categorical_crossentropy"},
        }
    ).network
    parameters = Parameters.initialize(network, np.random.default_rng(0))
    old_blob = pack("model", {"network": network.to_dict()}, {"flat": parameters.flat})
    job_id = store_model(db_session, "old", old_blob, epochs=(5,))
    rows = [[0.5, -1.0], [2.0, 0.25]]

    by_name = client.post("/v1/models/old/predict", json={"inputs": rows}).json()
    by_job = client.post(f"/v1/jobs/{job_id}/predict", json={"inputs": rows}).json()
    version = client.get("/v1/models/old/versions/1").json()

    outputs = predict(network, parameters, np.array(rows))
    assert by_name == {
        "outputs": outputs.tolist(),
        "probabilities": outputs.tolist(),
        "labels": outputs.argmax(axis=1)[:, None].tolist(),
        "model": {"name": "old", "version": 1},
    }
    assert by_job == {key: value for key, value in by_name.items() if key != "model"} | {"epoch": 5}
    assert (version["task"], version["classes"], version["preprocessing"]) == (
        "classification",
        None,
        None,
    )


@pytest.fixture
def read_engine(migrated_url: str) -> Iterator[Engine]:
    """The engine of the resolver's read-only sessions, as the app makes it."""
    engine = make_engine(migrated_url, read_only=True)
    yield engine
    engine.dispose()


@pytest.fixture
def resolver(read_engine: Engine) -> ModelResolver:
    return ModelResolver(ModelCache(8), make_session_factory(read_engine))


@pytest.fixture
def elsewhere(db_engine: Engine) -> sessionmaker[Session]:
    """Sessions of another process: a worker registering versions, another API process
    moving aliases."""
    return make_session_factory(db_engine)


def register_versions(sessions: sessionmaker[Session], name: str, count: int) -> None:
    weights = Model(SPEC.network, Parameters.zeros(SPEC.network.layers)).to_bytes()
    with sessions.begin() as session:
        dataset = create_dataset(session, "d", np.zeros((2, 2)), np.zeros((2, 1)), {})
        job = create_job(session, dataset.id, SPEC, name, 1)
        for _ in range(count):
            registry.register_version(session, name, job.id, 1, weights)


@contextmanager
def statements_counted(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements `engine` runs meanwhile."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@contextmanager
def thread_pool_taken() -> Iterator[None]:
    """Every token of the default thread pool held: work handed to it waits meanwhile."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    borrowers = [object() for _ in range(int(limiter.total_tokens))]
    for borrower in borrowers:
        limiter.acquire_on_behalf_of_nowait(borrower)
    try:
        yield
    finally:
        for borrower in borrowers:
            limiter.release_on_behalf_of(borrower)


@pytest.mark.anyio
async def test_a_cached_model_of_a_known_version_answers_without_database_or_thread_pool(
    resolver: ModelResolver, read_engine: Engine, elsewhere: sessionmaker[Session]
) -> None:
    register_versions(elsewhere, "m", 2)
    with elsewhere.begin() as session:
        registry.set_alias(session, "m", "production", 1)
    for selector in ({"version": 1}, {"alias": "production"}, {}):
        await resolver.model("m", **selector)

    with statements_counted(read_engine) as statements, thread_pool_taken():
        with anyio.fail_after(5):
            pinned = await resolver.model("m", version=1)
            by_alias = await resolver.model("m", alias="production")
            latest = await resolver.model("m")

    assert statements == []
    assert (pinned.version, by_alias.version, latest.version) == (1, 1, 2)
    assert (pinned.refresh, by_alias.refresh, latest.refresh) == (None, None, None)


@pytest.mark.anyio
async def test_an_alias_moved_elsewhere_is_seen_once_the_stale_lookup_is_refreshed(
    resolver: ModelResolver, elsewhere: sessionmaker[Session]
) -> None:
    register_versions(elsewhere, "m", 2)
    with elsewhere.begin() as session:
        registry.set_alias(session, "m", "production", 1)
    assert (await resolver.model("m", alias="production")).version == 1

    with elsewhere.begin() as session:
        registry.set_alias(session, "m", "production", 2)
    trusted = await resolver.model("m", alias="production")
    await anyio.sleep(RESOLVE_TTL_SECONDS * 1.1)
    stale = await resolver.model("m", alias="production")
    assert stale.refresh is not None
    await stale.refresh()

    assert (trusted.version, trusted.refresh) == (1, None)
    assert stale.version == 1
    assert (await resolver.model("m", alias="production")).version == 2


@pytest.mark.anyio
async def test_an_alias_deleted_elsewhere_is_not_found_after_the_refresh(
    resolver: ModelResolver, elsewhere: sessionmaker[Session]
) -> None:
    register_versions(elsewhere, "m", 1)
    with elsewhere.begin() as session:
        registry.set_alias(session, "m", "production", 1)
    await resolver.model("m", alias="production")

    with elsewhere.begin() as session:
        registry.delete_alias(session, "m", "production")
    await anyio.sleep(RESOLVE_TTL_SECONDS * 1.1)
    stale = await resolver.model("m", alias="production")
    assert stale.version == 1 and stale.refresh is not None
    await stale.refresh()

    with pytest.raises(NotFound, match="no alias production"):
        await resolver.model("m", alias="production")


@pytest.mark.anyio
async def test_a_refresh_dropped_with_a_failed_request_leaves_the_next_one_to_refresh(
    resolver: ModelResolver, elsewhere: sessionmaker[Session]
) -> None:
    register_versions(elsewhere, "m", 1)
    await resolver.model("m")
    register_versions(elsewhere, "m", 1)
    await anyio.sleep(RESOLVE_TTL_SECONDS * 1.1)

    # The first stale request fails after resolving (say, over a size limit): its
    # response, and with it its refresh, is never sent.
    await resolver.model("m")
    second = await resolver.model("m")
    assert second.refresh is not None
    await second.refresh()

    assert (await resolver.model("m")).version == 2
