"""Training jobs: submit, follow, cancel, read history and snapshots, predict at a snapshot."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from service.api.deps import (
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    body_schema,
    model_cache,
    parse_body,
    read_sessions,
)
from service.api.predictions import predict_off_loop
from service.api.problems import problem_responses
from service.api.responses import JSONResponse
from service.api.routes.datasets import Cursor, Limit
from service.api.schemas import (
    HistoryPoint,
    JobCreate,
    JobPredictRequest,
    JobRead,
    Page,
    PredictResponse,
    SnapshotRead,
    SnapshotSummary,
)
from service.config import Settings
from service.core import Model, RunSpec, SpecError, check_data
from service.db import JobStatus
from service.db import datasets as dataset_queries
from service.db import jobs as queries
from service.errors import Invalid

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _check_job_limits(settings: Settings, spec: RunSpec) -> None:
    parameters = spec.network.n_parameters
    if parameters > settings.max_parameters:
        raise Invalid(
            f"network has {parameters} parameters; the limit is {settings.max_parameters} "
            "(BACKPROP_MAX_PARAMETERS)",
            [{"loc": ["body", "network", "layers"], "msg": "model too large"}],
        )
    if spec.training.epochs > settings.max_epochs:
        raise Invalid(
            f"{spec.training.epochs} epochs exceed the limit of {settings.max_epochs} "
            "(BACKPROP_MAX_EPOCHS)",
            [{"loc": ["body", "training", "epochs"], "msg": f"at most {settings.max_epochs}"}],
        )


@router.post(
    "",
    status_code=202,
    response_model=JobRead,
    responses=problem_responses(404, 413, 422),
    summary="Submit a training job",
    description="Queues the job and returns at once; workers train it. Poll `GET /v1/jobs/{id}`.",
)
def create_job(body: JobCreate, session: SessionDep, settings: SettingsDep) -> Any:
    spec = RunSpec.from_dict(
        {"network": body.network.model_dump(), "training": body.training.model_dump()}
    )
    dataset = dataset_queries.get_dataset(session, body.dataset_id)
    _check_job_limits(settings, spec)
    inputs, targets = dataset_queries.dataset_arrays(dataset)
    try:
        check_data(inputs, targets, spec.network, spec.training.loss)
    except SpecError as error:
        if error.field.startswith("network."):
            raise
        # The data itself does not fit the spec (say, targets outside [0, 1] for a
        # cross-entropy): the client's field at fault is the dataset it chose.
        raise SpecError("dataset_id", f"dataset {dataset.id} does not fit: {error}") from None
    job = queries.create_job(session, dataset.id, spec, body.model_name, body.checkpoint_every)
    return job


@router.get("", response_model=Page[JobRead], responses=problem_responses(422), summary="List jobs")
def list_jobs(
    session: ReadSessionDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
    model_name: Annotated[
        str | None, Query(max_length=200, description="Only jobs for this model.")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    items, next_cursor = queries.list_jobs(session, limit, cursor, status, model_name)
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/{job_id}", response_model=JobRead, responses=problem_responses(404), summary="Get a job"
)
def get_job(job_id: str, session: ReadSessionDep) -> Any:
    return queries.get_job(session, job_id)


@router.post(
    "/{job_id}/cancel",
    response_model=JobRead,
    responses=problem_responses(404, 409),
    summary="Cancel a job",
    description="A queued job is cancelled at once; a running one stops within an epoch. "
    "Finished jobs answer 409.",
)
def cancel_job(job_id: str, session: SessionDep) -> Any:
    return queries.cancel_job(session, job_id)


@router.get(
    "/{job_id}/history",
    response_model=Page[HistoryPoint],
    responses=problem_responses(404, 422),
    summary="Per-epoch loss and metrics",
)
def get_history(
    job_id: str,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=100_000, description="Points per page.")] = 1000,
    cursor: Cursor = None,
    max_points: Annotated[
        int | None,
        Query(
            ge=2, le=100_000, description="Downsample the whole run to at most this many points."
        ),
    ] = None,
) -> Any:
    items, next_cursor = queries.history_page(session, job_id, limit, cursor, max_points)
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/{job_id}/snapshots",
    response_model=Page[SnapshotSummary],
    responses=problem_responses(404, 422),
    summary="Epochs with stored weights",
)
def list_snapshots(
    job_id: str, session: ReadSessionDep, limit: Limit = 1000, cursor: Cursor = None
) -> Any:
    items, next_cursor = queries.snapshot_page(session, job_id, limit, cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/{job_id}/snapshots/{epoch}",
    response_model=SnapshotRead,
    responses=problem_responses(404),
    summary="Weights at one epoch",
)
def get_snapshot(job_id: str, epoch: int, session: ReadSessionDep) -> Any:
    snapshot = queries.get_snapshot(session, job_id, epoch)
    model = Model.from_bytes(snapshot.weights)
    return {"epoch": snapshot.epoch, **model.parameters.to_layers()}


@router.post(
    "/{job_id}/predict",
    response_model=PredictResponse,
    responses=problem_responses(404, 413, 422),
    summary="Predict with a job's weights at a snapshot epoch (default: the latest)",
    openapi_extra=body_schema(JobPredictRequest),
)
async def predict(job_id: str, request: Request) -> Any:
    body = await parse_body(request, JobPredictRequest)
    sessions, cache = read_sessions(request), model_cache(request)

    def load() -> tuple[int, Model]:
        with sessions() as session:
            snapshot = queries.get_snapshot(session, job_id, body.epoch)
            return snapshot.epoch, cache.load(
                ("job", job_id, snapshot.epoch), lambda: snapshot.weights
            )

    epoch, network = await run_in_threadpool(load)
    return JSONResponse(await predict_off_loop(network, body.inputs, epoch=epoch))
