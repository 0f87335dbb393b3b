"""MLflow's scoring protocol: `POST /v1/models/{name}/invocations`, as `mlflow models
serve` answers `POST /invocations` for a pyfunc model.

The body is JSON with exactly one of `dataframe_split`, `dataframe_records`, `instances`
and `inputs` (and optionally `params`), or `text/csv`. Named columns are checked against
the model's `feature_names` when it has them: every feature must be given and no other
column, and the values are put in the model's order; a model without feature names takes
the values in the order given. The answer is `{"predictions": [...]}`: class labels for a
classifier (its class names, or class indices for a model trained on encoded targets),
the outputs in the targets' units for regression; one value per row is a flat list, as
MLflow's server answers a one-dimensional array.
"""

import io
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from service.api.deps import model_resolver, parse_body
from service.api.limits import check_prediction_size
from service.api.params import ModelName
from service.api.predictions import predict_off_loop
from service.api.problems import PROBLEM_JSON, TITLES
from service.api.responses import JSONResponse
from service.api.schemas import MAX_STORED_INT, NAME_PATTERN
from service.api.schemas.protocols import (
    INVOCATION_CSV,
    InvocationProblem,
    InvocationRequest,
    InvocationResponse,
)
from service.core import Model, SpecError
from service.core.model import check_inputs
from service.errors import DomainError, Invalid
from service.tabular import read_csv

router = APIRouter(prefix="/v1/models", tags=["protocols"])

INPUT_FORMS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# Above this many bytes a CSV body is parsed in the thread pool.
INLINE_CSV_BYTES = 64 * 1024


class UnsupportedMediaType(DomainError):
    status = 415


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Error responses documented with MLflow's members beside problem+json's."""
    return {
        status: {
            "model": InvocationProblem,
            "description": TITLES[status],
            "content": {PROBLEM_JSON: {}},
        }
        for status in sorted({*statuses, 422})
    }


BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": InvocationRequest.model_json_schema()},
            "text/csv": {"schema": INVOCATION_CSV},
        },
    }
}


@router.post(
    "/{name}/invocations",
    operation_id="invoke_model",
    response_model=InvocationResponse,
    responses=_responses(404, 413, 415, 422),
    summary="Predict in MLflow's scoring protocol (`mlflow models serve`'s /invocations)",
    description="JSON with exactly one of `dataframe_split`, `dataframe_records`, "
    "`instances` or `inputs`, or a `text/csv` body; columns named in the request must be "
    "the model's `feature_names` when it has them (in any order). Answers "
    '`{"predictions": ...}` as MLflow\'s server does: class labels for classifiers, '
    "outputs for regression (flat for one output), or what `params.output` asks for. "
    "Errors are problem+json with MLflow's `error_code` and `message` too.",
    openapi_extra=BODY,
)
async def invoke_model(
    name: ModelName,
    request: Request,
    version: Annotated[
        int | None, Query(ge=1, le=MAX_STORED_INT, description="Default: the latest.")
    ] = None,
    alias: Annotated[
        str | None, Query(pattern=NAME_PATTERN, description="An alias such as `production`.")
    ] = None,
) -> Any:
    if version is not None and alias is not None:
        raise Invalid(
            "give version or alias, not both",
            [{"loc": ["query", "alias"], "msg": "give version or alias, not both"}],
        )
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    output = None
    if media_type == "text/csv":
        rows, columns, field = await _csv_rows(await request.body())
    elif media_type == "application/json":
        body = await parse_body(request, InvocationRequest)
        rows, columns, field = _json_rows(body)
        output = body.params.output if body.params is not None else None
    else:
        raise UnsupportedMediaType(
            f"content type {media_type or 'none'!r} is not accepted: send application/json "
            "or text/csv"
        )
    resolved = await model_resolver(request).model(name, version=version, alias=alias)
    inputs = _in_model_order(resolved.model, rows, columns, field)
    check_prediction_size(request.app.state.settings, resolved.model.spec, len(inputs), field)
    prediction = await predict_off_loop(resolved.model, inputs)
    answer = {"predictions": _predictions(prediction, output)}
    return JSONResponse(answer, background=resolved.refresh)


def _json_rows(body: InvocationRequest) -> tuple[Any, list[str] | None, str]:
    """The rows of the one input form the body holds, the column names it gives (if any)
    and the field they came from."""
    given = [form for form in INPUT_FORMS if getattr(body, form) is not None]
    if len(given) != 1:
        message = f"give exactly one of {', '.join(INPUT_FORMS)}" + (
            f", not {' and '.join(given)}" if given else ""
        )
        raise Invalid(message, [{"loc": ["body", *given[1:2]], "msg": message}])
    (form,) = given
    if body.dataframe_split is not None:
        split = body.dataframe_split
        return split.data, split.columns, "dataframe_split.data"
    value = getattr(body, form)
    if isinstance(value, dict):
        return _from_columns(value, form)
    if isinstance(value[0], dict):
        return _from_records(value, form)
    return value, None, form


def _from_records(records: list[dict[str, float]], field: str) -> tuple[Any, list[str], str]:
    columns = list(records[0])
    for index, record in enumerate(records):
        if record.keys() != records[0].keys():
            raise SpecError(
                f"{field}[{index}]",
                f"has the columns {sorted(record)}, the first record {sorted(columns)}",
            )
    return [[record[column] for column in columns] for record in records], columns, field


def _from_columns(values: dict[str, list[float]], field: str) -> tuple[Any, list[str], str]:
    columns = list(values)
    lengths = {column: len(column_values) for column, column_values in values.items()}
    if len(set(lengths.values())) > 1:
        raise SpecError(field, f"columns must be equally long, got {lengths}")
    return list(zip(*values.values(), strict=True)), columns, field


async def _csv_rows(data: bytes) -> tuple[Any, list[str] | None, str]:
    """Rows and header names of a CSV body, read as `backprop predict` reads its file."""
    source = io.BytesIO(data)
    if len(data) <= INLINE_CSV_BYTES:
        table = read_csv(source, n_targets=0, field="csv")
    else:
        table = await run_in_threadpool(read_csv, source, n_targets=0, field="csv")
    names = None if table.feature_names is None else list(table.feature_names)
    return table.inputs, names, "csv"


def _in_model_order(model: Model, rows: Any, columns: list[str] | None, field: str) -> np.ndarray:
    """The rows as the model's inputs `(n_samples, n_inputs)`: by name in the model's
    feature order when both name their columns, else as given."""
    where = field.replace(".data", ".columns") if field.endswith(".data") else field
    if columns is not None and len(set(columns)) != len(columns):
        repeated = sorted({column for column in columns if columns.count(column) > 1})
        raise SpecError(where, f"names a column more than once: {repeated}")
    features = model.feature_names
    if columns is None or features is None:
        return check_inputs(rows, model.spec.n_inputs, field)
    unknown = [column for column in columns if column not in features]
    missing = [feature for feature in features if feature not in columns]
    if unknown or missing:
        raise SpecError(
            where,
            f"unknown columns {unknown}, missing {missing}; the model's features are "
            f"{list(features)}",
        )
    inputs = check_inputs(rows, len(columns), field)
    return inputs[:, [columns.index(feature) for feature in features]]


def _predictions(prediction: dict[str, Any], output: str | None) -> Any:
    """The `predictions` MLflow's server would answer, from the native predict's body."""
    chosen = output or ("labels" if "labels" in prediction else "outputs")
    if chosen not in prediction:
        raise SpecError(
            "params.output",
            f"this model answers no {chosen} (it is a regression model): ask for outputs",
        )
    values = prediction[chosen]
    if isinstance(values, np.ndarray) and values.shape[1] == 1 and chosen != "probabilities":
        return values[:, 0]
    return values
