"""The Open Inference Protocol v2 (KServe's and Triton's REST API), under `/v2`.

A model has one input tensor, `input` `[-1, n_inputs]` (FP32 or FP64), and as outputs
`outputs` (FP64 `[-1, n_outputs]`: the values the native predict answers, in the targets'
units, widened losslessly from a float32 model's), and for classifiers `probabilities`
(FP64) and `labels` (the class names as BYTES, INT64 or BOOL `[-1]`; class indices INT64
`[-1, k]` for a model trained on encoded targets). Version `{v}` is the registry's version
number; without it, the latest.

Requests may use tritonclient's binary tensor extension for their inputs (a JSON header
of `Inference-Header-Content-Length` bytes, then the raw little-endian tensors);
outputs are always answered as JSON `data`, which every client reads. Errors are
`{"error": "..."}`: 400 for an invalid request, 404 for an unknown model or version
(`service.api.problems.answer`). `/v2/health/*` are probes, open like `/health`.
"""

import math
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from service.api.deps import model_resolver, read_sessions
from service.api.limits import check_prediction_size
from service.api.params import ModelName
from service.api.predictions import Resolved, predict_off_loop
from service.api.problems import TITLES
from service.api.responses import JSONResponse
from service.api.schemas import MAX_STORED_INT
from service.api.schemas.protocols import (
    InferenceError,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    RequestInput,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from service.core import Model
from service.db import registry
from service.db.migrate import head_revision, probe
from service.errors import Invalid

router = APIRouter(prefix="/v2", tags=["inference v2"])
# The probes: open with keys configured, as /health and /ready are.
health_router = APIRouter(prefix="/v2/health", tags=["inference v2"])

SERVER_NAME = "backprop-service"
PLATFORM = "backprop_numpy"
INPUT = "input"
DTYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
HEADER_LENGTH = "inference-header-content-length"

Version = Annotated[int, Path(ge=1, le=MAX_STORED_INT, description="A version number.")]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": InferenceError, "description": TITLES[status]} for status in statuses}


# 400 also answers malformed path parameters (names, version numbers).
ERRORS = _errors(400, 404)
INFER_ERRORS = _errors(400, 404, 413)
# The API keys' refusals, as the protocol writes errors (`auth.documentation`).
KEY_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        **_errors(401)[401],
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    **_errors(403),
}


@health_router.get(
    "/live",
    operation_id="get_server_live",
    response_model=ServerLive,
    summary="The process is alive (v2)",
)
async def server_live() -> Any:
    return {"live": True}


@health_router.get(
    "/ready",
    operation_id="get_server_ready",
    response_model=ServerReady,
    responses={503: {"model": ServerReady, "description": "Database unreachable or not migrated"}},
    summary="The database is reachable and at the newest migration (v2)",
)
def server_ready(request: Request) -> Any:
    reachable, revision = probe(request.app.state.engine)
    ready = reachable and revision == head_revision()
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


@router.get(
    "",
    operation_id="get_server_metadata",
    response_model=ServerMetadata,
    responses=_errors(404),
    summary="The server's name, version and protocol extensions (v2)",
)
async def server_metadata(request: Request) -> Any:
    return {"name": SERVER_NAME, "version": request.app.version, "extensions": []}


@router.get(
    "/models/{name}",
    operation_id="get_model_metadata",
    response_model=ModelMetadata,
    responses=ERRORS,
    summary="A model's versions and tensors, at its latest version (v2)",
)
async def model_metadata(name: ModelName, request: Request) -> Any:
    return await _metadata(request, name, None)


@router.get(
    "/models/{name}/versions/{version}",
    operation_id="get_model_version_metadata",
    response_model=ModelMetadata,
    responses=ERRORS,
    summary="A model version's tensors (v2)",
)
async def model_version_metadata(name: ModelName, version: Version, request: Request) -> Any:
    return await _metadata(request, name, version)


@router.get(
    "/models/{name}/ready",
    operation_id="get_model_ready",
    response_model=ModelReady,
    responses=ERRORS,
    summary="The model's latest version loads and can infer (v2)",
)
async def model_ready(name: ModelName, request: Request) -> Any:
    resolved = await model_resolver(request).model(name)
    return JSONResponse({"name": name, "ready": True}, background=resolved.refresh)


@router.get(
    "/models/{name}/versions/{version}/ready",
    operation_id="get_model_version_ready",
    response_model=ModelReady,
    responses=ERRORS,
    summary="The model version loads and can infer (v2)",
)
async def model_version_ready(name: ModelName, version: Version, request: Request) -> Any:
    await model_resolver(request).model(name, version=version)
    return {"name": name, "ready": True}


INFER_DESCRIPTION = (
    "One input tensor `input`, FP32 or FP64, shape `[rows, n_inputs]`, `data` row-major "
    "(flat or rows), or as binary after the JSON header (tritonclient's binary tensor "
    "extension). Answers the requested `outputs` (default all the model's) as JSON data; "
    "`id` is echoed; `parameters` are accepted and ignored."
)
INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": InferenceRequest.model_json_schema()}},
    }
}


@router.post(
    "/models/{name}/infer",
    operation_id="infer_model",
    response_model=InferenceResponse,
    responses=INFER_ERRORS,
    summary="Infer with a model's latest version (v2)",
    description=INFER_DESCRIPTION,
    openapi_extra=INFER_BODY,
)
async def infer(name: ModelName, request: Request) -> Any:
    return await _infer(request, name, None)


@router.post(
    "/models/{name}/versions/{version}/infer",
    operation_id="infer_model_version",
    response_model=InferenceResponse,
    responses=INFER_ERRORS,
    summary="Infer with a model version (v2)",
    description=INFER_DESCRIPTION,
    openapi_extra=INFER_BODY,
)
async def infer_version(name: ModelName, version: Version, request: Request) -> Any:
    return await _infer(request, name, version)


async def _metadata(request: Request, name: str, version: int | None) -> JSONResponse:
    resolved = await model_resolver(request).model(name, version=version)
    versions = await run_in_threadpool(_version_numbers, request, name)
    body = {
        "name": name,
        "versions": [str(number) for number in versions],
        "platform": PLATFORM,
        "inputs": [_input_tensor(resolved.model)],
        "outputs": _output_tensors(resolved.model),
    }
    return JSONResponse(body, background=resolved.refresh)


def _version_numbers(request: Request, name: str) -> list[int]:
    with read_sessions(request)() as session:
        return registry.version_numbers(session, name)


def _input_tensor(model: Model) -> dict[str, Any]:
    datatype = "FP32" if model.parameters.flat.dtype == np.float32 else "FP64"
    return {"name": INPUT, "datatype": datatype, "shape": [-1, model.spec.n_inputs]}


def _output_tensors(model: Model) -> list[dict[str, Any]]:
    """What `_infer` answers for this model, by name, datatype and shape."""
    width = model.spec.n_outputs
    tensors = [{"name": "outputs", "datatype": "FP64", "shape": [-1, width]}]
    if model.classes is not None:
        if model.is_classifier:
            n_classes = len(model.classes)
            tensors.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, n_classes]})
        tensors.append({"name": "labels", "datatype": _class_datatype(model), "shape": [-1]})
    elif model.is_classifier:
        tensors.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, width]})
        label_width = 1 if model.spec.output_activation == "softmax" else width
        tensors.append({"name": "labels", "datatype": "INT64", "shape": [-1, label_width]})
    return tensors


def _class_datatype(model: Model) -> str:
    assert model.classes is not None
    first = model.classes[0]
    if isinstance(first, bool):
        return "BOOL"
    return "INT64" if isinstance(first, int) else "BYTES"


async def _infer(request: Request, name: str, version: int | None) -> JSONResponse:
    body, binary = _parse(await request.body(), request.headers.get(HEADER_LENGTH))
    resolved: Resolved = await model_resolver(request).model(name, version=version)
    model = resolved.model
    inputs = _input_array(body.inputs[0], binary, model.spec.n_inputs)
    tensors = {tensor["name"]: tensor for tensor in _output_tensors(model)}
    wanted = [output.name for output in body.outputs or []] or list(tensors)
    unknown = [output for output in wanted if output not in tensors]
    if unknown:
        raise Invalid(f"unknown outputs {unknown}: this model answers {list(tensors)}")
    check_prediction_size(request.app.state.settings, model.spec, len(inputs))
    prediction = await predict_off_loop(model, inputs)
    outputs = []
    for output in wanted:
        values = prediction[output]
        array = np.asarray(values, np.float64 if tensors[output]["datatype"] == "FP64" else None)
        outputs.append(
            {
                "name": output,
                "datatype": tensors[output]["datatype"],
                "shape": list(array.shape),
                # Class names stay the list they are (strings, integers, booleans).
                "data": values if isinstance(values, list) else array.reshape(-1),
            }
        )
    answer: dict[str, Any] = {"model_name": name, "model_version": str(resolved.version)}
    if body.id is not None:
        answer["id"] = body.id
    answer["outputs"] = outputs
    return JSONResponse(answer, background=resolved.refresh)


def _parse(data: bytes, header_length: str | None) -> tuple[InferenceRequest, bytes]:
    """The request's JSON and the binary tensor data after it (empty without the
    binary extension)."""
    split = len(data)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(data):
            raise Invalid(
                f"{HEADER_LENGTH} must be the JSON header's length in bytes, at most the "
                f"body's {len(data)}"
            )
        split = int(header_length)
    try:
        return InferenceRequest.model_validate_json(data[:split]), data[split:]
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise Invalid(f"{where}: {first['msg']}") from None


def _input_array(tensor: RequestInput, binary: bytes, n_inputs: int) -> np.ndarray:
    """The input tensor as rows `(n_samples, n_inputs)`, in the datatype it was sent as."""
    dtype = DTYPES.get(tensor.datatype)
    if tensor.name != INPUT:
        raise Invalid(f"unknown input {tensor.name!r}: this model's input is {INPUT!r}")
    if dtype is None:
        raise Invalid(f"input datatype {tensor.datatype!r} is not supported: send FP32 or FP64")
    if len(tensor.shape) != 2 or tensor.shape[1] != n_inputs or tensor.shape[0] == 0:
        raise Invalid(
            f"input shape must be [rows, {n_inputs}] with at least one row, got {tensor.shape}"
        )
    size = math.prod(tensor.shape)
    binary_size = (tensor.parameters or {}).get("binary_data_size")
    if binary_size is not None:
        if tensor.data is not None or binary_size != len(binary):
            raise Invalid(
                f"binary_data_size {binary_size!r} must be the {len(binary)} bytes after the "
                "JSON header, and the input then has no data"
            )
        if len(binary) != size * dtype.itemsize:
            raise Invalid(f"{len(binary)} bytes do not hold a {tensor.datatype} {tensor.shape}")
        array = np.frombuffer(binary, dtype)
    elif tensor.data is None:
        raise Invalid("input has no data")
    else:
        try:
            array = np.asarray(tensor.data, dtype).reshape(-1)
        except ValueError:
            raise Invalid("input data must be numbers, flat or in rows of equal length") from None
    if array.size != size:
        raise Invalid(f"input data has {array.size} values; shape {tensor.shape} needs {size}")
    rows: np.ndarray = array.reshape(tensor.shape)
    if not np.isfinite(rows).all():
        raise Invalid("input data must be finite (no NaN or infinity)")
    return rows
