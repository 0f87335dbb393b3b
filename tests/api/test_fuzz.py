"""Schemathesis fuzzes the API against its own OpenAPI schema.

Every operation gets valid and invalid requests (Hypothesis, derandomized) and every
response is checked: no 5xx, a documented status code and content type, a body that
matches the documented schema, invalid input rejected and valid input accepted. The
stateful test follows the schema's links (dataset -> job -> its history, snapshots,
predictions; model -> versions, aliases, predictions) through real ids.

A job's event stream runs until the job ends. The stateless test reaches it only for
seeded jobs, which have ended, and for unknown ids (404); no link leads to it from a job
the fuzzer submits, which would stay queued and stream forever.

The app runs on a migrated database of the module's own (SQLite, and PostgreSQL when
BACKPROP_TEST_POSTGRES_URL is set) holding trained jobs and registered models under
fixed ids, so path parameters are drawn half the time from those and predictions run
real models. No worker runs: jobs the fuzzer submits stay queued.

Deletes would take away what the other operations need, so they draw their path
parameters from disposable jobs and models of their own (DESTRUCTIVE); in the stateful
test only a job the fuzzer submitted and cancelled is linked to its delete.

BACKPROP_FUZZ_EXAMPLES (default 50) sets the examples per operation and the number of
stateful scenarios; raise it to fuzz deeper.
"""

import os
import threading
from collections.abc import Iterator
from typing import Any

import hypothesis
import numpy as np
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.core.result import Ok
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Receive, Scope, Send

from service.api.app import create_app
from service.config import Settings
from service.core import RunSpec
from service.core.datasets import generate
from service.db import JobRow, JobStatus, make_engine, make_session_factory, registry
from service.db.datasets import create_dataset
from service.db.jobs import create_job
from service.db.migrate import upgrade
from service.jobs.worker import Worker
from tests.conftest import POSTGRES_URL_ENV, _backends, _fresh_postgres_database
from tests.jobs.worker_helpers import worker_settings

EXAMPLES = int(os.environ.get("BACKPROP_FUZZ_EXAMPLES", "50"))
EPOCHS = 20
CHECKPOINT_EVERY = 5

SINE = generate("sine", 40)
# name: (inputs, targets, spec); each becomes a dataset, a job trained to the end and a
# model, under fixed ids the generation config below names. One input column or two:
# the fuzzer's rows are most often one value wide, and those of a prediction must be as
# wide as the model's input.
SEEDED: dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]] = {
    "sine": (*SINE, {"network": {"layers": [1, 4, 1], "hidden_activation": "tanh"}}),
    "sign": (
        SINE[0],
        (SINE[1] > 0).astype(float),
        {
            "network": {"layers": [1, 4, 1], "output_activation": "sigmoid"},
            "training": {"loss": "binary_crossentropy"},
        },
    ),
    "xor": (*generate("xor", 4), {"network": {"layers": [2, 4, 1]}}),
    "spiral": (
        *generate("spiral", 60, 0.1, 0, 3),
        {
            "network": {"layers": [2, 4, 3], "output_activation": "softmax"},
            "training": {"loss": "categorical_crossentropy"},
        },
    ),
}
DATASET_IDS = [f"seeded-dataset-{name}" for name in SEEDED]
JOB_IDS = [f"seeded-job-{name}" for name in SEEDED]
ALIAS = "production"
# What the delete operations draw from instead of the seeded resources, which the other
# operations need to the end: a finished job (204 once, then 404) and a queued one (409);
# a model with versions (409, or 204 with force) and one whose versions go one by one
# (version 1 has the alias: 409).
DISPOSABLE_JOB_IDS = ["d15b05ab1e00000000000000000000f1", "d15b05ab1e00000000000000000000f2"]
DISPOSABLE_MODEL = "disposable-model"
DISPOSABLE_VERSIONS_MODEL = "disposable-versions"
DISPOSABLE_VERSIONS = [1, 2, 3]
# With a key configured every /v1 request needs it, so the fuzzer also checks that requests
# without it, or with a wrong one, are refused.
API_KEY = "fuzz-key"

# Requests the schema allows but the API refuses with 422, because what makes them wrong
# is a rule between fields, or between a field and stored data or the server's settings,
# which a JSON schema cannot say (each schema's `description` says it too). Every bound on
# a single value is in the schema. For these operations only, a 422 to a valid request is
# not a failure of the `positive_data_acceptance` check; any other status outside its
# usual ones still is, and every other check runs unrelaxed everywhere.
CURSOR = "`cursor` is opaque: only cursors the service issued are valid"
PREDICTION_ROWS = (
    "input rows must be as wide as the model's input, their values small enough that the "
    "outputs stay finite"
)
EVALUATION_DATA = (
    "a dataset_id, or inputs with labels or targets; the data must fit the model (its "
    "input width, its classes or output width)"
)
TAGS_AFTER_MERGE = "at most 50 tags may remain once the patch merged into the stored ones"
GRID = (
    "a range's min must be below its max, with a finite width, its values small enough that "
    "the outputs stay finite; the model must have exactly 2 inputs; resolution x resolution "
    "rows within the prediction size limits (server settings)"
)
CROSS_FIELD_422 = {
    "GET /v1/datasets": CURSOR,
    "GET /v1/datasets/{dataset_id}/rows": CURSOR,
    "GET /v1/jobs": CURSOR,
    "GET /v1/jobs/{job_id}/history": CURSOR,
    "GET /v1/jobs/{job_id}/snapshots": CURSOR,
    "GET /v1/models": CURSOR,
    "GET /v1/models/{name}/versions": CURSOR,
    "POST /v1/datasets": "rows of one width; as many targets rows as inputs rows; "
    "n_classes > 2 only for spiral and gaussian; the size limits (server settings)",
    "POST /v1/datasets/csv": "the file must be numeric CSV with more columns than targets",
    "POST /v1/models/{name}/versions": "the file must be a model file the service wrote, "
    "intact (its checksum, shapes and values are checked)",
    "POST /v1/jobs": "the loss must fit the output activation, and the network the "
    "dataset's widths and the loss its targets; a warm start's model its layers, classes "
    "and preprocessing; the size limits (server settings)",
    "POST /v1/jobs/{job_id}/retry": "continuing from a checkpoint needs more epochs than "
    "it holds; the size limits (server settings)",
    "POST /v1/trace": "the loss must fit the output activation and the parameters the "
    "network's layer shapes",
    "POST /v1/jobs/{job_id}/predict": PREDICTION_ROWS,
    "POST /v1/models/{name}/predict": PREDICTION_ROWS,
    "POST /v1/jobs/{job_id}/grid": GRID,
    "POST /v1/models/{name}/grid": GRID,
    "POST /v1/jobs/{job_id}/evaluate": EVALUATION_DATA,
    "POST /v1/models/{name}/evaluate": EVALUATION_DATA,
    "POST /v1/models/{name}/invocations": "exactly one of dataframe_split, dataframe_records, "
    "instances and inputs; " + PREDICTION_ROWS + "; named columns must be the model's "
    "feature names; version or alias, not both; params.output must fit the model",
    # A patch's tags merge into those stored: more than 50 may not remain.
    "PATCH /v1/jobs/{job_id}": TAGS_AFTER_MERGE,
    "PATCH /v1/models/{name}": TAGS_AFTER_MERGE,
    "PATCH /v1/models/{name}/versions/{version}": TAGS_AFTER_MERGE,
}
# The Open Inference Protocol answers such requests 400, as it says (`{"error"}`).
V2_INFER = (
    "the input tensor must be `input`, FP32 or FP64, [rows, n_inputs] as wide as the model's "
    "input, with as many values as its shape; requested outputs must be the model's"
)
CROSS_FIELD_400 = {
    "POST /v2/models/{name}/infer": V2_INFER,
    "POST /v2/models/{name}/versions/{version}/infer": V2_INFER,
}
# Every check schemathesis has but the timed one, by the name its config gives it.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "use_after_free",
    "ensure_resource_availability",
    "missing_required_header",
    "ignored_auth",
    "object_level_authorization",
    "unsupported_method",
    "allow_header_conformance",
]
ACCEPTED = ["2xx", "401", "403", "404", "409", "422", "429"]
# A prediction runs a model only for rows as wide as its input (one value or two for the
# seeded models): these get more examples than the others.
PREDICTIONS = [
    "POST /v1/jobs/{job_id}/predict",
    "POST /v1/models/{name}/predict",
    "POST /v1/models/{name}/invocations",
    *CROSS_FIELD_400,
]

# The deletes take their path parameters from the disposable resources, half the time.
DESTRUCTIVE = {
    "DELETE /v1/jobs/{job_id}": {
        "path.job_id": {"dictionary": "disposable-jobs", "probability": 0.5}
    },
    "DELETE /v1/models/{name}": {
        "path.name": {"dictionary": "disposable-model", "probability": 0.5},
        # Always: a generated boolean is most often false, and the model's versions
        # and aliases going with it is the delete with the most to get wrong.
        "query.force": "true",
    },
    "DELETE /v1/models/{name}/versions/{version}": {
        "path.name": {"dictionary": "disposable-versions-model", "probability": 0.5},
        "path.version": {"dictionary": "disposable-versions", "probability": 0.5},
    },
}

# Half the time a path (or body) parameter is one of these instead of a generated value,
# so the fuzzer reaches real datasets, jobs, snapshots and models, not only 404s.
SEEDED_HALF_THE_TIME = {"probability": 0.5}
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 0,
        # Every check schemathesis has (`st run -c all`), relaxed only as CROSS_FIELD_422 says.
        "checks": {"enabled": True},
        "auth": {"openapi": {"HTTPBearer": {"bearer": API_KEY}}},
        # Whole event streams of the seeded jobs: progress, an event per epoch, the state.
        "max-stream-events": EPOCHS + 10,
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
        # Only the links the routes declare: inferred ones also pair a new job with its
        # predictions, which 404 until a worker has written a snapshot.
        "phases": {"stateful": {"inference": {"algorithms": []}}},
        "dictionaries": {
            "datasets": {"values": DATASET_IDS},
            "jobs": {"values": JOB_IDS},
            "models": {"values": list(SEEDED)},
            "aliases": {"values": [ALIAS]},
            "epochs": {"values": [CHECKPOINT_EVERY, EPOCHS]},
            "versions": {"values": [1]},
            "disposable-jobs": {"values": DISPOSABLE_JOB_IDS},
            "disposable-model": {"values": [DISPOSABLE_MODEL]},
            "disposable-versions-model": {"values": [DISPOSABLE_VERSIONS_MODEL]},
            "disposable-versions": {"values": DISPOSABLE_VERSIONS},
        },
        "parameters": {
            "path.dataset_id": {"dictionary": "datasets", **SEEDED_HALF_THE_TIME},
            "body.dataset_id": {"dictionary": "datasets", **SEEDED_HALF_THE_TIME},
            "path.job_id": {"dictionary": "jobs", **SEEDED_HALF_THE_TIME},
            "path.name": {"dictionary": "models", **SEEDED_HALF_THE_TIME},
            "path.alias": {"dictionary": "aliases", **SEEDED_HALF_THE_TIME},
            "path.epoch": {"dictionary": "epochs", **SEEDED_HALF_THE_TIME},
            "body.epoch": {"dictionary": "epochs", **SEEDED_HALF_THE_TIME},
            "path.version": {"dictionary": "versions", **SEEDED_HALF_THE_TIME},
            "body.version": {"dictionary": "versions", **SEEDED_HALF_THE_TIME},
        },
        "operations": [
            {
                "include-name": name,
                "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
            }
            for name in CROSS_FIELD_422
        ]
        + [
            {
                "include-name": name,
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400"]}},
            }
            for name in CROSS_FIELD_400
        ]
        + [
            {"include-name": name, "generation": {"max-examples": 4 * EXAMPLES}}
            for name in PREDICTIONS
        ]
        + [
            {"include-name": name, "parameters": parameters}
            for name, parameters in DESTRUCTIVE.items()
        ],
    }
)


class FuzzedApp:
    """The ASGI app the schema sends requests to: the one the module fixture built for the
    backend under test. Schemathesis parametrizes the tests at collection, from a schema
    loaded at import, before any database exists."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "request the fuzzed_app fixture"
        await self.app(scope, receive, send)


FUZZED_APP = FuzzedApp()
schema = schemathesis.openapi.from_dict(
    create_app(Settings(api_keys=API_KEY)).openapi(), config=CONFIG
)
schema.app = FUZZED_APP


def _queue_seeded_jobs(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        for (name, (inputs, targets, spec)), dataset_id, job_id in zip(
            SEEDED.items(), DATASET_IDS, JOB_IDS, strict=True
        ):
            dataset = create_dataset(session, name, inputs, targets, {"kind": "rows"})
            # Renamed before anything refers to them: the fixed ids the config names.
            dataset.id = dataset_id
            session.flush()
            full_spec = {**spec, "training": {"epochs": EPOCHS, **spec.get("training", {})}}
            job = create_job(
                session, dataset_id, RunSpec.from_dict(full_spec), name, CHECKPOINT_EVERY
            )
            job.id = job_id
            session.flush()


def _add_disposable(session: Session) -> None:
    """What the deletes may remove (see DESTRUCTIVE): jobs and models of their own."""
    xor = list(SEEDED).index("xor")
    weights = registry.get_version(session, "xor", 1).weights
    for name, count in ((DISPOSABLE_MODEL, 2), (DISPOSABLE_VERSIONS_MODEL, 3)):
        for _ in range(count):
            registry.register_version(session, name, JOB_IDS[xor], EPOCHS, weights)
        registry.set_alias(session, name, ALIAS, 1)
    spec = RunSpec.from_dict(SEEDED["xor"][2])
    for job_id in DISPOSABLE_JOB_IDS:
        job = create_job(session, DATASET_IDS[xor], spec, None, CHECKPOINT_EVERY)
        job.id = job_id
        session.flush()
    # The first one finished; the second stays queued, as no worker runs from now on.
    session.get_one(JobRow, DISPOSABLE_JOB_IDS[0]).status = JobStatus.SUCCEEDED


def seed(url: str) -> None:
    """Datasets and jobs trained to the end by an in-process worker, so each job has its
    history, snapshots and a registered model (regression, sigmoid, softmax)."""
    engine = make_engine(url)
    try:
        sessions = make_session_factory(engine)
        _queue_seeded_jobs(sessions)
        with Worker(worker_settings(url)) as worker:
            worker.run(threading.Event(), until_idle=True)
        with sessions.begin() as session:
            registry.set_alias(session, "sign", ALIAS, 1)
            _add_disposable(session)
    finally:
        engine.dispose()


@pytest.fixture(scope="module", params=_backends())
def fuzzed_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One seeded database for the whole module: the fuzzer sends thousands of requests."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"])
    else:
        urls = _fresh_postgres_database(os.environ[POSTGRES_URL_ENV])
    for url in urls:
        upgrade(url)
        seed(url)
        yield url


@pytest.fixture(scope="module")
def fuzzed_app(fuzzed_url: str) -> Iterator[FastAPI]:
    settings = Settings(database_url=fuzzed_url, max_body_bytes=1_000_000, api_keys=API_KEY)
    FUZZED_APP.app = create_app(settings)
    yield FUZZED_APP.app
    # Schemathesis starts the app's lifespan on the first request and keeps it for the
    # process; end it so the engines are disposed before the database is dropped.
    shutdown_lifespans()
    FUZZED_APP.app = None


@schema.parametrize()
def test_every_operation_conforms_to_its_schema(
    case: schemathesis.Case[Any], fuzzed_app: FastAPI
) -> None:
    case.call_and_validate()


def test_linked_operations_conform_to_the_schema(fuzzed_app: FastAPI, fuzzed_url: str) -> None:
    engine = make_engine(fuzzed_url)
    sessions = make_session_factory(engine)

    class Scenarios(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario starts with a queued job none has touched, the newest one, which
            # `GET /v1/jobs` links to: Hypothesis replays a scenario's first steps in later
            # ones and requires them to answer alike, and a cancel of a job an earlier
            # scenario cancelled answers 409, not 200.
            with sessions.begin() as session:
                create_job(
                    session,
                    DATASET_IDS[list(SEEDED).index("xor")],
                    RunSpec.from_dict(SEEDED["xor"][2]),
                    None,
                    CHECKPOINT_EVERY,
                )

    try:
        Scenarios.run(
            settings=hypothesis.settings(
                max_examples=EXAMPLES,
                stateful_step_count=10,
                derandomize=True,
                database=None,
                deadline=None,
            )
        )
    finally:
        engine.dispose()


def test_every_check_runs_and_only_the_listed_operations_are_relaxed() -> None:
    """What `st run -c all` checks, less `max_response_time` (no timed assertions here)."""
    relaxed = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        checks = schema.config.checks_config_for(operation=operation)
        disabled = [name for name in CHECKS if not getattr(checks, name).enabled]
        assert not disabled, f"{operation.label}: {disabled} disabled"
        if {"400", "422"} & set(checks.positive_data_acceptance.expected_statuses):
            relaxed.append(operation.label)
    assert sorted(relaxed) == sorted([*CROSS_FIELD_422, *CROSS_FIELD_400])
