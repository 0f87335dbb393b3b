"""The model registry: versions, aliases and predictions."""

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
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
from service.api.limits import check_prediction_size
from service.api.model_files import (
    DOWNLOAD_RESPONSE,
    FileFormat,
    FormatParam,
    download,
    read_upload,
)
from service.api.openapi import link
from service.api.pagination import NEXT_CURSOR, Cursor, Limit
from service.api.params import AliasName, ModelName, TagFilter, tag_pairs
from service.api.predictions import evaluation_body, predict_off_loop
from service.api.problems import problem_responses
from service.api.responses import JSONResponse
from service.api.schemas import (
    MAX_STORED_INT,
    TEXT_PATTERN,
    AliasSet,
    EvaluateRequest,
    EvaluateResponse,
    GridRequest,
    GridResponse,
    MetadataPatch,
    ModelRead,
    ModelVersionRead,
    Page,
    PredictRequest,
    PredictResponse,
)
from service.core import Model
from service.db import registry
from service.db.models import ModelRow, ModelVersionRow, VersionSource

router = APIRouter(prefix="/v1/models", tags=["models"])


def _model_links(name: str) -> dict[str, dict[str, Any]]:
    """Links to the model whose name `name` (a runtime expression) holds."""
    return {
        "GetModel": link("GET", "/v1/models/{name}", {"name": name}),
        "ListVersions": link("GET", "/v1/models/{name}/versions", {"name": name}),
        "PredictWithModel": link("POST", "/v1/models/{name}/predict", {"name": name}),
        "EvaluateModel": link("POST", "/v1/models/{name}/evaluate", {"name": name}),
        "GridOfModel": link("POST", "/v1/models/{name}/grid", {"name": name}),
    }


LIST_LINKS = {
    **_model_links("$response.body#/items/0/name"),
    "NextPage": link("GET", "/v1/models", {"cursor": NEXT_CURSOR}),
}
THIS_MODEL = "$response.body#/name"
MODEL_LINKS = {
    **_model_links(THIS_MODEL),
    "SetAlias": link(
        "PUT",
        "/v1/models/{name}/aliases/{alias}",
        {"name": THIS_MODEL},
        {"version": "$response.body#/latest_version"},
    ),
}
SAME_MODEL = "$request.path.name"
FIRST_VERSION = "$response.body#/items/0/version"
VERSION_LINKS = {
    "NextPage": link(
        "GET", "/v1/models/{name}/versions", {"name": SAME_MODEL, "cursor": NEXT_CURSOR}
    ),
    "GetVersion": link(
        "GET",
        "/v1/models/{name}/versions/{version}",
        {"name": SAME_MODEL, "version": FIRST_VERSION},
    ),
    "PredictWithVersion": link(
        "POST", "/v1/models/{name}/predict", {"name": SAME_MODEL}, {"version": FIRST_VERSION}
    ),
    "DownloadVersion": link(
        "GET",
        "/v1/models/{name}/versions/{version}/download",
        {"name": SAME_MODEL, "version": FIRST_VERSION},
    ),
}
UPLOADED = "$response.body#/version"
UPLOADED_LINKS = {
    "GetVersion": link(
        "GET", "/v1/models/{name}/versions/{version}", {"name": SAME_MODEL, "version": UPLOADED}
    ),
    "PredictWithVersion": link(
        "POST", "/v1/models/{name}/predict", {"name": SAME_MODEL}, {"version": UPLOADED}
    ),
    "DownloadVersion": link(
        "GET",
        "/v1/models/{name}/versions/{version}/download",
        {"name": SAME_MODEL, "version": UPLOADED},
    ),
}
ALIAS_LINKS = {
    "PredictWithAlias": link(
        "POST", "/v1/models/{name}/predict", {"name": THIS_MODEL}, {"alias": "$request.path.alias"}
    ),
    "DeleteAlias": link(
        "DELETE",
        "/v1/models/{name}/aliases/{alias}",
        {"name": THIS_MODEL, "alias": "$request.path.alias"},
    ),
}


def _model_read(session: Session, model: ModelRow) -> dict[str, Any]:
    return {
        "name": model.name,
        "description": model.description,
        "latest_version": registry.latest_version(session, model.name),
        "aliases": registry.aliases_of(session, model.name),
        "created_at": model.created_at,
        "tags": model.tags,
    }


def _version_read(version: ModelVersionRow) -> dict[str, Any]:
    model = Model.from_bytes(version.weights)
    return {
        "name": version.model_name,
        "version": version.version,
        "job_id": version.job_id,
        "epoch": version.epoch,
        "source": version.source,
        "network": model.spec.to_dict(),
        "task": model.task,
        "classes": None if model.classes is None else list(model.classes),
        # None for a model stored before models carried any.
        "preprocessing": None if model.preprocessing is None else model.preprocessing.kinds(),
        "feature_names": None if model.feature_names is None else list(model.feature_names),
        "metrics": version.metrics,
        "created_at": version.created_at,
        "description": version.description,
        "tags": version.tags,
    }


@router.get(
    "",
    response_model=Page[ModelRead],
    responses={200: {"links": LIST_LINKS}, **problem_responses(422)},
    summary="List models",
)
def list_models(
    session: ReadSessionDep, tag: TagFilter = None, limit: Limit = 50, cursor: Cursor = None
) -> Any:
    items, next_cursor = registry.list_models(session, limit, cursor, tag_pairs(tag))
    return {"items": [_model_read(session, m) for m in items], "next_cursor": next_cursor}


@router.get(
    "/{name}",
    response_model=ModelRead,
    responses={200: {"links": MODEL_LINKS}, **problem_responses(404)},
    summary="Get a model",
)
def get_model(name: ModelName, session: ReadSessionDep) -> Any:
    return _model_read(session, registry.get_model(session, name))


@router.get(
    "/{name}/versions",
    operation_id="list_model_versions",
    response_model=Page[ModelVersionRead],
    responses={200: {"links": VERSION_LINKS}, **problem_responses(404, 422)},
    summary="List a model's versions, newest first",
)
def list_versions(
    name: ModelName,
    session: ReadSessionDep,
    tag: TagFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    items, next_cursor = registry.list_versions(session, name, limit, cursor, tag_pairs(tag))
    return {"items": [_version_read(v) for v in items], "next_cursor": next_cursor}


@router.get(
    "/{name}/versions/{version}",
    operation_id="get_model_version",
    response_model=ModelVersionRead,
    responses=problem_responses(404),
    summary="Get one version of a model",
)
def get_version(
    name: ModelName, version: Annotated[int, Path(ge=1, le=MAX_STORED_INT)], session: ReadSessionDep
) -> Any:
    return _version_read(registry.get_version(session, name, version))


@router.patch(
    "/{name}",
    response_model=ModelRead,
    responses={200: {"links": MODEL_LINKS}, **problem_responses(400, 404, 422)},
    summary="Edit a model's description and tags",
    description="`tags` merge into the model's (a key set to null is removed); see "
    "`MetadataPatch`.",
)
def update_model(name: ModelName, body: MetadataPatch, session: SessionDep) -> Any:
    model = registry.edit_model(session, name, body.model_dump(exclude_unset=True))
    return _model_read(session, model)


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(404, 409),
    summary="Delete a model",
    description="A model with versions answers 409 unless `force=true`, which deletes its "
    "versions and aliases with it, in one transaction. Predictions of a deleted model "
    "answer 404 from then on (a request already being answered may still get its answer).",
)
def delete_model(
    name: ModelName,
    session: SessionDep,
    cache: ModelCacheDep,
    force: Annotated[
        bool, Query(description="Delete the model's versions and aliases too.")
    ] = False,
) -> None:
    registry.delete_model(session, name, force)
    # Committed before the cache forgets it: a prediction loading the model in between
    # would otherwise read it from the database once more and cache it again.
    session.commit()
    cache.drop_model(name)


@router.patch(
    "/{name}/versions/{version}",
    operation_id="update_model_version",
    response_model=ModelVersionRead,
    responses=problem_responses(400, 404, 422),
    summary="Edit a version's description and tags",
    description="Its weights never change. `tags` merge into the version's (a key set to "
    "null is removed); see `MetadataPatch`.",
)
def update_version(
    name: ModelName,
    version: Annotated[int, Path(ge=1, le=MAX_STORED_INT)],
    body: MetadataPatch,
    session: SessionDep,
) -> Any:
    edited = registry.edit_version(session, name, version, body.model_dump(exclude_unset=True))
    return _version_read(edited)


@router.delete(
    "/{name}/versions/{version}",
    operation_id="delete_model_version",
    status_code=204,
    response_class=Response,
    responses=problem_responses(404, 409),
    summary="Delete one version of a model",
    description="409 while an alias points at it (the detail names the aliases): move or "
    "delete them first. The job that trained it keeps its history and snapshots. "
    'Predictions of that version, and of "latest" where it was the latest, stop using it '
    "at once (a request already being answered may still get its answer). Version numbers "
    "follow the highest one left, so deleting the latest frees its number for the next.",
)
def delete_version(
    name: ModelName,
    version: Annotated[int, Path(ge=1, le=MAX_STORED_INT)],
    session: SessionDep,
    cache: ModelCacheDep,
) -> None:
    registry.delete_version(session, name, version)
    # Committed first, as in `delete_model`.
    session.commit()
    cache.drop_version(name, version)


@router.get(
    "/{name}/versions/{version}/download",
    operation_id="download_model_version",
    response_class=Response,
    responses={**DOWNLOAD_RESPONSE, **problem_responses(404, 501)},
    summary="Download one version of a model as a file (native or ONNX)",
    description="The native file (`format=native`, the default) holds the network spec, "
    "the weights, the preprocessing statistics, the class and feature names and a manifest "
    "with the payload's SHA-256; `POST /v1/models/{name}/versions` and `backprop predict` "
    "read it. `format=onnx` answers an ONNX graph (opset 17) whose `outputs` are the "
    "predict route's; 501 when the service was installed without the `onnx` extra.",
)
def download_version(
    name: ModelName,
    version: Annotated[int, Path(ge=1, le=MAX_STORED_INT)],
    session: ReadSessionDep,
    file_format: FormatParam = FileFormat.NATIVE,
) -> Response:
    row = registry.get_version(session, name, version)
    about = {
        "model": {"name": name, "version": version},
        "source": {"job_id": row.job_id, "epoch": row.epoch, "kind": row.source},
        "created_at": row.created_at,
    }
    return download(row.weights, file_format, f"{name}-v{version}", about)


@router.post(
    "/{name}/versions",
    operation_id="upload_model_version",
    status_code=201,
    response_model=ModelVersionRead,
    responses={201: {"links": UPLOADED_LINKS}, **problem_responses(400, 413, 422)},
    summary="Register a model file as the next version of a model",
    description="Multipart with the file in `file`: a native model file as the download "
    "route writes it (`format=native`). Its manifest, SHA-256, array shapes, finiteness "
    "and size are checked before anything is stored; a file that fails any check is a 422 "
    "naming `file`, and no model or version is created. The model is created on first "
    "use; the version has `source` upload and no job or epoch. Bodies up to "
    "BACKPROP_MAX_UPLOAD_BYTES.",
)
def upload_version(
    name: ModelName,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="A native model file (.backprop)")],
    description: Annotated[
        str | None,
        Form(max_length=1000, pattern=TEXT_PATTERN, description="Kept with the version"),
    ] = None,
) -> Any:
    _, payload = read_upload(settings, file)
    version = registry.register_version(
        session, name, None, None, payload, source=VersionSource.UPLOAD, description=description
    )
    return _version_read(version)


@router.put(
    "/{name}/aliases/{alias}",
    operation_id="set_model_alias",
    response_model=ModelRead,
    responses={200: {"links": ALIAS_LINKS}, **problem_responses(400, 404, 422)},
    summary="Point an alias at a version",
)
def set_alias(
    name: ModelName, alias: AliasName, body: AliasSet, session: SessionDep, cache: ModelCacheDep
) -> Any:
    registry.set_alias(session, name, alias, body.version)
    cache.forget(name, alias)
    return _model_read(session, registry.get_model(session, name))


@router.delete(
    "/{name}/aliases/{alias}",
    operation_id="delete_model_alias",
    status_code=204,
    response_class=Response,
    responses=problem_responses(404),
    summary="Remove an alias",
)
def delete_alias(
    name: ModelName, alias: AliasName, session: SessionDep, cache: ModelCacheDep
) -> None:
    registry.delete_alias(session, name, alias)
    cache.forget(name, alias)


@router.post(
    "/{name}/predict",
    operation_id="predict_model",
    response_model=PredictResponse,
    responses=problem_responses(404, 413, 422),
    summary="Predict with a model version (default: the latest) or an alias",
    openapi_extra=body_schema(PredictRequest),
)
async def predict(name: ModelName, request: Request) -> Any:
    # The hot path: a cached model of a known version answers without the database, and
    # the route takes no dependencies (each costs FastAPI a resolution per request).
    body = await parse_rows_body(request, PredictRequest)
    resolved = await model_resolver(request).model(name, version=body.version, alias=body.alias)
    check_prediction_size(request.app.state.settings, resolved.model.spec, len(body.inputs))
    reference = {"name": name, "version": resolved.version}
    prediction = await predict_off_loop(resolved.model, body.inputs, model=reference)
    return JSONResponse(prediction, background=resolved.refresh)


@router.post(
    "/{name}/evaluate",
    operation_id="evaluate_model",
    response_model=EvaluateResponse,
    responses=problem_responses(404, 413, 422),
    summary="Evaluate a model version (default: the latest) or an alias on labelled data",
    description="Loss (on the scaled problem the model trains on, as in the job's history), "
    "metrics in the data's own units, and for classifiers the confusion matrix, on a stored "
    "dataset or on inline rows with their labels or targets.",
    openapi_extra=body_schema(EvaluateRequest),
)
async def evaluate(name: ModelName, request: Request) -> Any:
    body = await parse_body(request, EvaluateRequest)
    resolved = await model_resolver(request).model(name, version=body.version, alias=body.alias)
    evaluation = await run_in_threadpool(
        evaluation_body,
        request.app.state.settings,
        read_sessions(request),
        resolved.model,
        body,
    )
    evaluation["model"] = {"name": name, "version": resolved.version}
    return JSONResponse(evaluation, background=resolved.refresh)


@router.post(
    "/{name}/grid",
    operation_id="predict_model_grid",
    response_model=GridResponse,
    responses=problem_responses(404, 413, 422),
    summary="Predict with a 2-input model (default: the latest version) on an N x N grid",
    description="The outputs at every point of a `resolution` x `resolution` grid over "
    "`x_range` (the first input) and `y_range` (the second), in one call: a decision "
    "boundary or a fitted surface. Each point's outputs and probabilities are what "
    "`predict_model` answers for it. Ranges default to the extent of the data of the job "
    "that trained the version, plus 10% on each side (`range_source` says where they came "
    "from). A model without exactly 2 inputs is a 422; the grid's points count against the "
    "prediction size limits like predict's rows.",
    openapi_extra=body_schema(GridRequest),
)
async def predict_grid(name: ModelName, request: Request) -> Any:
    body = await parse_body(request, GridRequest)
    resolved = await model_resolver(request).model(name, version=body.version, alias=body.alias)
    version = resolved.version
    check_two_inputs(resolved.model, f"model {name} version {version}", ["path", "name"])
    grid = await grid_answer(
        request,
        resolved.model,
        body,
        lambda session: registry.version_job_id(session, name, version),
        model={"name": name, "version": version},
    )
    return JSONResponse(grid, background=resolved.refresh)
