"""Training jobs: submit, follow, cancel, read history and snapshots, predict at a snapshot."""

import csv
import io
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy.orm import Session

from service.api.deps import (
    ModelCacheDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    body_schema,
    model_resolver,
    parse_body,
    parse_rows_body,
    read_sessions,
)
from service.api.grids import check_two_inputs, grid_answer
from service.api.limits import check_parameter_count, check_prediction_size
from service.api.model_files import DOWNLOAD_RESPONSE, FileFormat, FormatParam, download
from service.api.openapi import link
from service.api.pagination import NEXT_CURSOR, Cursor, Limit
from service.api.params import JobId, ModelNameFilter, TagFilter, tag_pairs
from service.api.predictions import evaluation_body, predict_off_loop
from service.api.problems import problem_responses
from service.api.responses import JSONResponse
from service.api.schemas import (
    MAX_STORED_INT,
    EvaluateResponse,
    GridResponse,
    HistoryPoint,
    JobCreate,
    JobEvaluateRequest,
    JobGridRequest,
    JobPredictRequest,
    JobRead,
    JobRetry,
    MetadataPatch,
    Page,
    PredictResponse,
    SnapshotRead,
    SnapshotSummary,
)
from service.config import Settings
from service.core import Model, NetworkSpec, RunSpec, SpecError, check_data
from service.core.labels import Labels, check_labelled_run, check_labels_fit
from service.core.spec import stored_spec, with_task_defaults
from service.core.training import check_start_model
from service.db import JobStatus, registry
from service.db import datasets as dataset_queries
from service.db import jobs as queries
from service.errors import Busy, Conflict, Invalid, NotFound

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _job_links(job_id: str) -> dict[str, dict[str, Any]]:
    """Links to the job whose id `job_id` (a runtime expression) holds. Predictions need a
    snapshot, so they are linked from the list of snapshots. None to the job's events:
    they follow it until it ends, and nothing trains the jobs the fuzz tests submit."""
    parameters = {"job_id": job_id}
    return {
        "GetJob": link("GET", "/v1/jobs/{job_id}", parameters),
        "CancelJob": link("POST", "/v1/jobs/{job_id}/cancel", parameters),
        "RetryJob": link("POST", "/v1/jobs/{job_id}/retry", parameters),
        "GetHistory": link("GET", "/v1/jobs/{job_id}/history", parameters),
        "ListSnapshots": link("GET", "/v1/jobs/{job_id}/snapshots", parameters),
        "UpdateJob": link("PATCH", "/v1/jobs/{job_id}", parameters),
    }


JOB_LINKS = {
    **_job_links("$response.body#/id"),
    "GetDataset": link(
        "GET", "/v1/datasets/{dataset_id}", {"dataset_id": "$response.body#/dataset_id"}
    ),
}
LIST_LINKS = {
    **_job_links("$response.body#/items/0/id"),
    "NextPage": link(
        "GET",
        "/v1/jobs",
        {
            "cursor": NEXT_CURSOR,
            "status": "$request.query.status",
            "model_name": "$request.query.model_name",
        },
    ),
}
SAME_JOB = "$request.path.job_id"
# A job the fuzzer submitted is deleted only once cancelled: no link leads to deleting a job
# whose history and snapshots the other links need.
CANCELLED_LINKS = {
    "DeleteJob": link("DELETE", "/v1/jobs/{job_id}", {"job_id": "$response.body#/id"}),
}
FIRST_SNAPSHOT = "$response.body#/items/0/epoch"
SNAPSHOT_LINKS = {
    "NextPage": link(
        "GET", "/v1/jobs/{job_id}/snapshots", {"job_id": SAME_JOB, "cursor": NEXT_CURSOR}
    ),
    "GetSnapshot": link(
        "GET", "/v1/jobs/{job_id}/snapshots/{epoch}", {"job_id": SAME_JOB, "epoch": FIRST_SNAPSHOT}
    ),
    "PredictAtSnapshot": link(
        "POST", "/v1/jobs/{job_id}/predict", {"job_id": SAME_JOB}, {"epoch": FIRST_SNAPSHOT}
    ),
    "GridAtSnapshot": link(
        "POST", "/v1/jobs/{job_id}/grid", {"job_id": SAME_JOB}, {"epoch": FIRST_SNAPSHOT}
    ),
    "DownloadSnapshot": link(
        "GET",
        "/v1/jobs/{job_id}/snapshots/{epoch}/download",
        {"job_id": SAME_JOB, "epoch": FIRST_SNAPSHOT},
    ),
}
HISTORY_LINKS = {
    "NextPage": link(
        "GET",
        "/v1/jobs/{job_id}/history",
        {"job_id": SAME_JOB, "cursor": NEXT_CURSOR, "limit": "$request.query.limit"},
    ),
}


def _check_job_limits(settings: Settings, spec: RunSpec, n_samples: int) -> None:
    check_parameter_count(settings, spec.network)
    epochs = spec.training.epochs
    if epochs > settings.max_epochs:
        raise Invalid(
            f"{epochs} epochs exceed the limit of {settings.max_epochs} (BACKPROP_MAX_EPOCHS)",
            [{"loc": ["body", "training", "epochs"], "msg": f"at most {settings.max_epochs}"}],
        )
    # The samples trained on each epoch: the validation split is held out as the worker does.
    train_samples = n_samples - round(spec.training.validation_split * n_samples)
    if epochs * train_samples > settings.max_epoch_samples:
        raise Invalid(
            f"{epochs} epochs x {train_samples} training samples = {epochs * train_samples} "
            f"exceed the limit of {settings.max_epoch_samples} (BACKPROP_MAX_EPOCH_SAMPLES)",
            [
                {
                    "loc": ["body", "training", "epochs"],
                    "msg": f"at most {settings.max_epoch_samples // train_samples} "
                    "with this dataset",
                }
            ],
        )


def _check_active_jobs(settings: Settings, session: Session) -> None:
    active = queries.count_active_jobs(session)
    if active >= settings.max_active_jobs:
        raise Busy(
            f"{active} jobs are queued or running; the limit is {settings.max_active_jobs} "
            "(BACKPROP_MAX_ACTIVE_JOBS): submit again once some have finished"
        )


@router.post(
    "",
    status_code=202,
    response_model=JobRead,
    responses={202: {"links": JOB_LINKS}, **problem_responses(400, 404, 413, 422, 429)},
    summary="Submit a training job",
    description="Queues the job and returns at once; workers train it. Poll `GET /v1/jobs/{id}`. "
    "On a labelled dataset, `network.output_activation` and `training.loss` default to "
    "softmax and categorical cross-entropy (sigmoid and binary cross-entropy for a one-unit "
    "output); the job's `spec` shows every value used. With `initial_model` or "
    "`initial_job` the job warm-starts from those weights and their preprocessing "
    "statistics (a model, alias, job or snapshot that does not exist is a 404).",
)
def create_job(
    body: JobCreate, session: SessionDep, settings: SettingsDep, response: Response
) -> Any:
    dataset = dataset_queries.get_dataset(session, body.dataset_id, for_new_job=True)
    inputs, data = dataset_queries.dataset_data(dataset)
    labels = data if isinstance(data, Labels) else None
    start, start_model, start_field = _warm_start(session, body)
    # What the client left out of the spec is filled in from the dataset's task (softmax
    # for labels, identity for targets), so only the fields it did give are passed on.
    given = {
        "network": _given(body.network),
        "training": _given(body.training),
        "preprocessing": _given(body.preprocessing),
    }
    if start_model is not None:
        given["preprocessing"] = _start_preprocessing(start_model, given["preprocessing"])
    n_classes = None
    if labels is not None:
        n_classes = labels.n_classes
        # Before the spec is built: a width the classes cannot use is the error to report,
        # not what a default chosen for that width makes of it.
        check_labels_fit(NetworkSpec(layers=tuple(body.network.layers)), n_classes)
    spec = RunSpec.from_dict(with_task_defaults(given, dataset.task, n_classes))
    if start_model is not None:
        classes = None if labels is None else labels.classes
        check_start_model(start_model, spec.network, classes, start_field)
    _check_job_limits(settings, spec, dataset.n_samples)
    targets = data if labels is None else labels.targets_for(spec.network)
    try:
        check_data(inputs, targets, spec.network, spec.training.loss)
    except SpecError as error:
        if error.field.startswith("network."):
            raise
        # The data itself does not fit the spec (say, targets outside [0, 1] for a
        # cross-entropy): the client's field at fault is the dataset it chose.
        raise SpecError("dataset_id", f"dataset {dataset.id} does not fit: {error}") from None
    if labels is not None:
        check_labelled_run(spec, labels.classes, labels.counts())
    # Last, just before the insert: on PostgreSQL the count holds a lock until commit.
    _check_active_jobs(settings, session)
    job = queries.create_job(
        session,
        dataset.id,
        spec,
        body.model_name,
        body.checkpoint_every,
        description=body.description,
        tags=body.tags,
        start=start,
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


def _warm_start(
    session: Session, body: JobCreate
) -> tuple[queries.WarmStart | None, Model | None, str]:
    """The weights `initial_model` or `initial_job` name, resolved now and copied (a 404
    when they do not exist), with the model they make and the field that named them."""
    if body.initial_model is not None and body.initial_job is not None:
        raise Invalid(
            "give initial_model or initial_job, not both",
            [{"loc": ["body", "initial_job"], "msg": "not with initial_model"}],
        )
    if body.initial_model is not None:
        wanted = body.initial_model
        version = registry.resolve_version(session, wanted.name, wanted.version, wanted.alias)
        row = registry.get_version(session, wanted.name, version)
        source = {queries.START_MODEL: {"name": wanted.name, "version": version}}
        start = queries.WarmStart(row.weights, source)
        return start, Model.from_bytes(row.weights), queries.START_MODEL
    if body.initial_job is not None:
        snapshot = queries.get_snapshot(session, body.initial_job.id, body.initial_job.epoch)
        source = {queries.START_JOB: {"id": body.initial_job.id, "epoch": snapshot.epoch}}
        start = queries.WarmStart(snapshot.weights, source)
        return start, Model.from_bytes(snapshot.weights), queries.START_JOB
    return None, None, ""


def _start_preprocessing(model: Model, given: dict[str, Any]) -> dict[str, Any]:
    """The scaling of a warm-started job: the model's, whose statistics it reuses; a side
    the client set otherwise is a 422."""
    kinds = (
        model.preprocessing.kinds()
        if model.preprocessing is not None
        else {"inputs": "none", "targets": "none"}
    )
    for side, kind in given.items():
        if kind != kinds[side]:
            raise SpecError(
                f"preprocessing.{side}",
                f"is {kind}, but the model to start from scales {side} by {kinds[side]}: "
                "a warm start reuses its statistics (leave preprocessing out)",
            )
    return kinds


def _given(part: BaseModel) -> dict[str, Any]:
    """The fields of a spec part that the client set, as a spec dict has them."""
    return part.model_dump(include=part.model_fields_set)


@router.get(
    "",
    response_model=Page[JobRead],
    responses={200: {"links": LIST_LINKS}, **problem_responses(422)},
    summary="List jobs",
)
def list_jobs(
    session: ReadSessionDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
    model_name: ModelNameFilter = None,
    tag: TagFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    items, next_cursor = queries.list_jobs(
        session, limit, cursor, status, model_name, tag_pairs(tag)
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/{job_id:id}",
    response_model=JobRead,
    responses={200: {"links": JOB_LINKS}, **problem_responses(404)},
    summary="Get a job",
)
def get_job(job_id: JobId, session: ReadSessionDep) -> Any:
    return queries.get_job(session, job_id)


@router.patch(
    "/{job_id:id}",
    response_model=JobRead,
    responses={200: {"links": JOB_LINKS}, **problem_responses(400, 404, 422)},
    summary="Edit a job's description and tags",
    description="In any state. `tags` merge into the job's (a key set to null is removed); "
    "see `MetadataPatch`.",
)
def update_job(job_id: JobId, body: MetadataPatch, session: SessionDep) -> Any:
    return queries.edit_job(session, job_id, body.model_dump(exclude_unset=True))


@router.delete(
    "/{job_id:id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(404, 409),
    summary="Delete a finished job with its history and snapshots",
    description="Succeeded, failed and cancelled jobs only: a queued or running job answers "
    "409 (cancel it first). The model versions the job registered stay and keep predicting "
    "(their `job_id` becomes null); once no job uses its dataset, the dataset can be "
    "deleted. A second delete answers 404.",
)
def delete_job(job_id: JobId, session: SessionDep, cache: ModelCacheDep) -> None:
    queries.delete_job(session, job_id)
    # Committed before the cache forgets it: a prediction loading a snapshot in between
    # would otherwise read it from the database once more and cache it again.
    session.commit()
    cache.drop_job(job_id)


@router.post(
    "/{job_id:id}/cancel",
    response_model=JobRead,
    responses={200: {"links": CANCELLED_LINKS}, **problem_responses(404, 409)},
    summary="Cancel a job",
    description="A queued job is cancelled at once; a running one stops within an epoch. "
    "Finished jobs answer 409.",
)
def cancel_job(job_id: JobId, session: SessionDep) -> Any:
    return queries.cancel_job(session, job_id)


async def _retry_body(request: Request) -> JobRetry:
    """The retry's body; left out (empty), a retry from the start with the same epochs."""
    if not (await request.body()).strip():
        return JobRetry()
    return await parse_body(request, JobRetry)


@router.post(
    "/{job_id:id}/retry",
    status_code=202,
    response_model=JobRead,
    responses={202: {"links": JOB_LINKS}, **problem_responses(404, 409, 422, 429)},
    summary="Retry a job",
    description="Queues a new job with the same dataset, spec, model name, description and "
    "tags as a failed, cancelled or succeeded job (queued and running jobs answer 409), "
    "optionally for another number of `epochs`; `resume` says where it starts (see "
    "`JobRetry`). The new job's `retry_of` names this one; it copies what it needs, so it "
    "does not depend on this job staying. The body may be left out.",
    openapi_extra={"requestBody": {**body_schema(JobRetry)["requestBody"], "required": False}},
)
def retry_job(
    job_id: JobId,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    body: Annotated[JobRetry, Depends(_retry_body)],
) -> Any:
    wanted = body
    old = queries.get_job(session, job_id)
    if old.status in queries.ACTIVE:
        raise Conflict(
            f"job {job_id} is {old.status.value}; only failed, cancelled or succeeded jobs "
            "can be retried (cancel it first)"
        )
    spec_dict = stored_spec(old.spec)
    if wanted.epochs is not None:
        spec_dict["training"] = {**spec_dict["training"], "epochs": wanted.epochs}
    # The new job is held to today's rules, as any new job is.
    spec = RunSpec.from_dict(spec_dict)
    dataset = dataset_queries.get_dataset(session, old.dataset_id, for_new_job=True)
    _check_job_limits(settings, spec, dataset.n_samples)
    start = queries.warm_start_of(old)
    resume_epoch = None
    if wanted.resume == "final":
        try:
            final = queries.final_snapshot(session, old)
        except NotFound:
            raise Conflict(
                f"job {job_id} kept no weights to continue from (no snapshot); "
                'retry it with resume "none"'
            ) from None
        start = queries.WarmStart(
            final.weights, {queries.START_JOB: {"id": old.id, "epoch": final.epoch}}
        )
    elif wanted.resume == "checkpoint":
        resume_epoch = queries.latest_checkpoint_epoch(session, old.id)
        if resume_epoch is not None and resume_epoch >= spec.training.epochs:
            raise Invalid(
                f"job {job_id}'s last checkpoint is at epoch {resume_epoch}: continuing it "
                f"needs more than {spec.training.epochs} epochs",
                [{"loc": ["body", "epochs"], "msg": f"must be more than {resume_epoch}"}],
            )
    _check_active_jobs(settings, session)
    job = queries.create_job(
        session,
        old.dataset_id,
        spec,
        old.model_name,
        old.checkpoint_every,
        start=start,
        retry_of=old,
    )
    if resume_epoch is not None:
        queries.copy_run(session, old.id, job, resume_epoch)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


class HistoryFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


HISTORY_FIELDS = tuple(HistoryPoint.model_fields)
HISTORY_CSV_EXAMPLE = (
    ",".join(HISTORY_FIELDS) + "\r\n1,0.2512,0.2733,0.7088,0.85,0.8,0.81,0.8,0.8,,,,,0.05\r\n"
)
HISTORY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "links": HISTORY_LINKS,
        "description": "A page of epochs (JSON), or with `format=csv` the whole history as "
        "a CSV attachment.",
        "content": {
            "text/csv": {
                "schema": {"type": "string", "description": "A header row, one row per epoch"},
                "example": HISTORY_CSV_EXAMPLE,
            }
        },
        "headers": {
            "Content-Disposition": {
                "description": 'With `format=csv`: `attachment; filename="job-<id>-history.csv"`',
                "schema": {"type": "string"},
            }
        },
    },
    **problem_responses(404, 422),
}


@router.get(
    "/{job_id:id}/history",
    operation_id="get_job_history",
    response_model=Page[HistoryPoint],
    responses=HISTORY_RESPONSES,
    summary="Per-epoch loss and metrics, as JSON pages or as one CSV file",
    description="`loss` and `val_loss` are on the problem as trained, after preprocessing "
    "scaled the targets (with `preprocessing.targets: standardize`, in standard deviations); "
    "`mae`, `r2`, `val_mae` and `val_r2` are in the targets' raw units. Precision, recall "
    "and F1 are macro averages over the classes, on the validation part. With "
    "`format=csv` the answer is every epoch as `text/csv`: a header row naming the "
    "`HistoryPoint` fields, one row per epoch, empty cells for nulls (`limit`, `cursor` "
    "and `max_points` page the JSON answer only).",
)
def get_history(
    job_id: JobId,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=100_000, description="Points per page.")] = 1000,
    cursor: Cursor = None,
    max_points: Annotated[
        int | None,
        Query(
            ge=2, le=100_000, description="Downsample the whole run to at most this many points."
        ),
    ] = None,
    history_format: Annotated[
        HistoryFormat,
        Query(alias="format", description="`json` (default): pages; `csv`: one CSV file."),
    ] = HistoryFormat.JSON,
) -> Any:
    if history_format is HistoryFormat.CSV:
        return _history_csv(job_id, queries.whole_history(session, job_id))
    items, next_cursor = queries.history_page(session, job_id, limit, cursor, max_points)
    return {"items": items, "next_cursor": next_cursor}


def _history_csv(job_id: str, rows: list[Any]) -> Response:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(HISTORY_FIELDS)
    # csv writes None as an empty cell and a float as its shortest exact repr.
    writer.writerows([getattr(row, field) for field in HISTORY_FIELDS] for row in rows)
    return Response(
        text.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="job-{job_id}-history.csv"'},
    )


@router.get(
    "/{job_id:id}/snapshots",
    operation_id="list_job_snapshots",
    response_model=Page[SnapshotSummary],
    responses={200: {"links": SNAPSHOT_LINKS}, **problem_responses(404, 422)},
    summary="Epochs with stored weights",
)
def list_snapshots(
    job_id: JobId, session: ReadSessionDep, limit: Limit = 1000, cursor: Cursor = None
) -> Any:
    items, next_cursor = queries.snapshot_page(session, job_id, limit, cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/{job_id:id}/snapshots/{epoch}",
    operation_id="get_job_snapshot",
    response_model=SnapshotRead,
    responses=problem_responses(404),
    summary="Weights at one epoch",
)
def get_snapshot(
    job_id: JobId,
    epoch: Annotated[int, Path(ge=0, le=MAX_STORED_INT)],
    session: ReadSessionDep,
) -> Any:
    snapshot = queries.get_snapshot(session, job_id, epoch)
    model = Model.from_bytes(snapshot.weights)
    return {"epoch": snapshot.epoch, **model.parameters.to_layers()}


@router.get(
    "/{job_id:id}/snapshots/{epoch}/download",
    operation_id="download_job_snapshot",
    response_class=Response,
    responses={**DOWNLOAD_RESPONSE, **problem_responses(404, 501)},
    summary="Download a job's weights at one epoch as a model file (native or ONNX)",
    description="The same files as a model version's download: `format=native` (the "
    "default) for `backprop predict` and the upload route, `format=onnx` for ONNX runtimes "
    "(501 when the service was installed without the `onnx` extra).",
)
def download_snapshot(
    job_id: JobId,
    epoch: Annotated[int, Path(ge=0, le=MAX_STORED_INT)],
    session: ReadSessionDep,
    file_format: FormatParam = FileFormat.NATIVE,
) -> Response:
    snapshot = queries.get_snapshot(session, job_id, epoch)
    about = {
        "source": {"job_id": job_id, "epoch": snapshot.epoch, "kind": "job"},
        "created_at": snapshot.created_at,
    }
    stem = f"job-{job_id}-epoch-{snapshot.epoch}"
    return download(snapshot.weights, file_format, stem, about)


@router.post(
    "/{job_id:id}/predict",
    operation_id="predict_job",
    response_model=PredictResponse,
    responses=problem_responses(404, 413, 422),
    summary="Predict with a job's weights at a snapshot epoch (default: the latest)",
    openapi_extra=body_schema(JobPredictRequest),
)
async def predict(job_id: JobId, request: Request) -> Any:
    body = await parse_rows_body(request, JobPredictRequest)
    model, epoch = await model_resolver(request).snapshot(job_id, body.epoch)
    check_prediction_size(request.app.state.settings, model.spec, len(body.inputs))
    return JSONResponse(await predict_off_loop(model, body.inputs, epoch=epoch))


@router.post(
    "/{job_id:id}/grid",
    operation_id="predict_job_grid",
    response_model=GridResponse,
    responses=problem_responses(404, 413, 422),
    summary="Predict with a job's weights at a snapshot epoch (default: the latest) on an "
    "N x N grid",
    description="As `predict_model_grid`, with the job's weights at snapshot `epoch`: "
    "each point's outputs are what `predict_job` answers for it at that epoch. Ranges "
    "default to the extent of the job's dataset plus 10% on each side, the same at every "
    "epoch.",
    openapi_extra=body_schema(JobGridRequest),
)
async def predict_grid(job_id: JobId, request: Request) -> Any:
    body = await parse_body(request, JobGridRequest)
    model, epoch = await model_resolver(request).snapshot(job_id, body.epoch)
    check_two_inputs(model, f"job {job_id}'s network", ["path", "job_id"])
    grid = await grid_answer(request, model, body, lambda _: job_id, job_id=job_id, epoch=epoch)
    return JSONResponse(grid)


@router.post(
    "/{job_id:id}/evaluate",
    operation_id="evaluate_job",
    response_model=EvaluateResponse,
    responses=problem_responses(404, 413, 422),
    summary="Evaluate a job's weights at a snapshot epoch (default: the latest) on labelled data",
    description="Loss (on the scaled problem the model trains on, as in the job's history), "
    "metrics in the data's own units, and for classifiers the confusion matrix, on a stored "
    "dataset or on inline rows with their labels or targets.",
    openapi_extra=body_schema(JobEvaluateRequest),
)
async def evaluate(job_id: JobId, request: Request) -> Any:
    body = await parse_body(request, JobEvaluateRequest)
    model, epoch = await model_resolver(request).snapshot(job_id, body.epoch)
    evaluation = await run_in_threadpool(
        evaluation_body, request.app.state.settings, read_sessions(request), model, body
    )
    evaluation["epoch"] = epoch
    return JSONResponse(evaluation)
