"""Bodies of the other inference languages the service speaks: MLflow's scoring protocol
(`/v1/models/{name}/invocations`) and the Open Inference Protocol v2 (`/v2/...`), as
their own documentation spells them."""

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from service.api.schemas.common import Input, Output, Row, Rows
from service.api.schemas.predictions import ClassName
from service.api.schemas.problems import Problem

# A model input's name, as a dataframe column or a record's key.
Column = Annotated[str, Field(min_length=1, max_length=200)]
Records = Annotated[list[dict[Column, float]], Field(min_length=1)]
Columns = Annotated[dict[Column, Annotated[list[float], Field(min_length=1)]], Field(min_length=1)]
# MLflow's `instances` and `inputs` (TF Serving's forms): rows, records, or columns.
TensorInput = Annotated[Rows | Records | Columns, Field(union_mode="left_to_right")]


class DataframeSplit(Input):
    """pandas' `split` orient: `data` rows, with the `columns` that name their values."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"columns": ["weight", "height"], "data": [[4.5, 25], [30, 60]]}]
        }
    )

    columns: list[Column] | None = Field(
        None,
        description="Names of the values of each row; checked against the model's "
        "`feature_names` and put in their order when the model has them.",
    )
    data: Rows
    index: list[int | str] | None = Field(None, description="Ignored, as MLflow ignores it.")


class InvocationParams(Input):
    """MLflow's `params`, passed to the model's predict: what to answer."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"output": "probabilities"}]})

    output: Literal["labels", "probabilities", "outputs"] | None = Field(
        None,
        description="`labels` (the default for classifiers): the predicted class per row; "
        "`probabilities` (classifiers): a row of per-class probabilities per row; "
        "`outputs` (the default for regression): the network's outputs in the targets' "
        "units. A one-value answer per row is flattened, as MLflow's server does.",
    )


class InvocationRequest(Input):
    """Exactly one of `dataframe_split`, `dataframe_records`, `instances` and `inputs`,
    rows as wide as the model's input; the body may also be `text/csv`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"dataframe_split": {"columns": ["x1", "x2"], "data": [[1, 1], [-1, 1]]}},
                {"dataframe_records": [{"x1": 1, "x2": 1}, {"x1": -1, "x2": 1}]},
                {"instances": [[1, 1], [-1, 1]]},
                {"inputs": {"x1": [1, -1], "x2": [1, 1]}, "params": {"output": "outputs"}},
            ],
            "minProperties": 1,
        }
    )

    dataframe_split: DataframeSplit | None = None
    dataframe_records: Records | None = Field(
        None, description="One `{column: value}` object per row (pandas' `records` orient)."
    )
    instances: TensorInput | None = Field(
        None, description="Rows, or records, or `{column: [values]}` (TF Serving's forms)."
    )
    inputs: TensorInput | None = Field(
        None, description="Rows, or records, or `{column: [values]}` (TF Serving's forms)."
    )
    params: InvocationParams | None = None


# The CSV form of the body, named so it is documented as a schema of its own.
INVOCATION_CSV: dict[str, Any] = {
    "title": "InvocationCsv",
    "type": "string",
    "description": "CSV rows of numbers, one per prediction; a first row that is not all "
    "numbers is a header naming the columns (checked as `dataframe_split.columns` is).",
    "examples": ["x1,x2\n1,1\n-1,1\n"],
}


class InvocationResponse(Output):
    """What MLflow's scoring server answers: `predictions`, one per row: class labels
    for classifiers, the outputs for regression (a flat list for one output, rows for
    several), or what `params.output` asked for."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"predictions": ["cat", "dog"]},
                {"predictions": [0.27, 1.94]},
                {"predictions": [[0.98, 0.02], [0.03, 0.97]]},
            ]
        }
    )

    predictions: list[ClassName] | list[float] | list[list[float]] | list[list[int]]


class InvocationProblem(Problem):
    """A problem+json body with MLflow's members beside ours."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Invalid request",
                    "status": 422,
                    "detail": "dataframe_split.columns: unknown columns ['size'], missing "
                    "['height']; the model's features are ['weight', 'height']",
                    "errors": [
                        {
                            "loc": ["body", "dataframe_split", "columns"],
                            "msg": "unknown columns ['size'], missing ['height']; the "
                            "model's features are ['weight', 'height']",
                        }
                    ],
                    "error_code": "BAD_REQUEST",
                    "message": "dataframe_split.columns: unknown columns ['size'], missing "
                    "['height']; the model's features are ['weight', 'height']",
                }
            ]
        }
    )

    error_code: str = Field(
        description="MLflow's error code: BAD_REQUEST, RESOURCE_DOES_NOT_EXIST, ..."
    )
    message: str = Field(description="The same as `detail`.")


# Open Inference Protocol v2.

Datatype = Literal["FP32", "FP64", "INT64", "BOOL", "BYTES"]
Shape = list[Annotated[int, Field(ge=-1, le=2**31 - 1)]]
Parameters = dict[str, Any]


class InferenceError(Output):
    """The protocol's error body."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"error": "model 'pets' not found"}]})

    error: str


class ServerLive(Output):
    model_config = ConfigDict(json_schema_extra={"examples": [{"live": True}]})

    live: bool


class ServerReady(Output):
    model_config = ConfigDict(json_schema_extra={"examples": [{"ready": True}]})

    ready: bool


class ServerMetadata(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "backprop-service", "version": "0.1.0", "extensions": []}]
        }
    )

    name: str
    version: str
    extensions: list[str]


class TensorMetadata(Output):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "input", "datatype": "FP64", "shape": [-1, 2]}]}
    )

    name: str
    datatype: Datatype
    shape: list[int]


class ModelMetadata(Output):
    """A model's tensors: one input, `input` `[-1, n_inputs]`; the outputs `outputs`
    (FP64 `[-1, n_outputs]`, in the targets' units), and for classifiers `probabilities`
    and `labels` (class names as BYTES, INT64 or BOOL, `[-1]`; for models trained on
    encoded targets, class indices INT64 `[-1, 1]`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "pets",
                    "versions": ["1", "2"],
                    "platform": "backprop_numpy",
                    "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 2]}],
                    "outputs": [
                        {"name": "outputs", "datatype": "FP64", "shape": [-1, 2]},
                        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]},
                        {"name": "labels", "datatype": "BYTES", "shape": [-1]},
                    ],
                }
            ]
        }
    )

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ModelReady(Output):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "pets", "ready": True}]})

    name: str
    ready: bool


class RequestInput(Input):
    """One input tensor: `shape` `[rows, n_inputs]`, `data` row-major (flat, or a list of
    rows), FP32 or FP64. With tritonclient's binary tensor extension, `data` is left out
    and `parameters.binary_data_size` gives its bytes after the JSON header."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "input", "shape": [2, 2], "datatype": "FP32", "data": [1, 1, -1, 1]}
            ]
        }
    )

    name: str = Field(min_length=1, max_length=200)
    shape: Annotated[
        list[Annotated[int, Field(ge=0, le=2**31 - 1)]], Field(min_length=1, max_length=8)
    ]
    datatype: str = Field(
        min_length=1, max_length=20, description="FP32 or FP64; other types are refused."
    )
    parameters: Parameters | None = None
    data: list[float] | list[Row] | None = None


class RequestOutput(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "probabilities"}]})

    name: str = Field(min_length=1, max_length=200)
    parameters: Parameters | None = Field(
        None, description="Accepted and ignored: outputs are always answered as JSON data."
    )


class InferenceRequest(Input):
    """One input tensor; `outputs` chooses which outputs to answer (default all);
    `parameters` are accepted and ignored; `id` is echoed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "42",
                    "inputs": [
                        {
                            "name": "input",
                            "shape": [2, 2],
                            "datatype": "FP64",
                            "data": [[1, 1], [-1, 1]],
                        }
                    ],
                    "outputs": [{"name": "outputs"}],
                }
            ]
        }
    )

    id: str | None = Field(None, max_length=200)
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "outputs", "datatype": "FP64", "shape": [2, 1], "data": [0.02, 0.98]}
            ]
        }
    )

    name: str
    datatype: Datatype
    shape: list[int]
    data: list[float] | list[ClassName]


class InferenceResponse(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_name": "xor-net",
                    "model_version": "1",
                    "id": "42",
                    "outputs": [
                        {
                            "name": "outputs",
                            "datatype": "FP64",
                            "shape": [2, 1],
                            "data": [0.02, 0.98],
                        }
                    ],
                }
            ]
        }
    )

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]
