"""Request and response bodies: `XCreate` in, `XRead` out, `Page[X]` for lists.

Choices (activations, losses, ...) come from the core's tables, so adding one there
adds it here and to the OpenAPI page.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    computed_field,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import core_schema

from service.core.activations import HIDDEN, OUTPUT
from service.core.datasets import GENERATORS
from service.core.initializers import INITIALIZERS
from service.core.losses import LOSSES
from service.core.optimizers import OPTIMIZERS
from service.core.schedules import SCHEDULES
from service.core.spec import DTYPES, UPDATE_RULES
from service.db.models import JobStatus

T = TypeVar("T")

MAX_LAYER_WIDTH = 4096
# The largest value of the databases' INTEGER columns (epochs, versions): larger ones can
# match nothing, and PostgreSQL fails on a comparison with them.
MAX_STORED_INT = 2**31 - 1

# The 2-8-1 tanh network that learns XOR: the example wherever a spec appears.
EXAMPLE_NETWORK: JsonDict = {
    "layers": [2, 8, 1],
    "hidden_activation": "tanh",
    "output_activation": "identity",
    "init": "xavier_uniform",
}
EXAMPLE_TRAINING: JsonDict = {
    "loss": "mse",
    "optimizer": "sgd",
    "learning_rate": 0.05,
    "epochs": 500,
    "batch_size": 1,
    "shuffle": True,
    "seed": 0,
    "update_rule": "standard",
}
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class OneOf:
    """Annotated metadata: the value must be one of a table's keys (an enum in the schema)."""

    def __init__(self, choices: Iterable[str]) -> None:
        self.choices = sorted(choices)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.literal_schema(self.choices)


HiddenActivation = Annotated[str, OneOf(HIDDEN)]
OutputActivation = Annotated[str, OneOf(OUTPUT)]
Initializer = Annotated[str, OneOf(INITIALIZERS)]
Loss = Annotated[str, OneOf(LOSSES)]
OptimizerName = Annotated[str, OneOf(OPTIMIZERS)]
ScheduleName = Annotated[str, OneOf(SCHEDULES)]
UpdateRule = Annotated[str, OneOf(UPDATE_RULES)]
DType = Annotated[str, OneOf(DTYPES)]
GeneratorKind = Annotated[str, OneOf(GENERATORS)]
Name = Annotated[str, Field(pattern=NAME_PATTERN, examples=["xor-net"])]


def _integral_float_to_int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# An integer in a request body: JSON Schema's integers include 1.0, which strict models
# (see `Input`) would refuse; booleans and strings stay refused.
Integer = Annotated[int, BeforeValidator(_integral_float_to_int)]
Row = Annotated[list[float], Field(min_length=1)]
Rows = Annotated[list[Row], Field(min_length=1)]


class Input(BaseModel):
    """Every request body: unknown fields, NaN/infinity and values of another JSON type
    than the schema's (`true` or `"1"` for a number) are rejected."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(Output, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )


# ----- network and training specs -----------------------------------------------------


class NetworkSpecIn(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_NETWORK]})

    layers: list[Annotated[Integer, Field(ge=1, le=MAX_LAYER_WIDTH)]] = Field(
        min_length=2,
        max_length=32,
        description="Every layer's width, input and output included.",
        examples=[[2, 8, 1]],
    )
    hidden_activation: HiddenActivation = "relu"
    output_activation: OutputActivation = "identity"
    init: Initializer = Field("normal", description="`normal` is the notebook's standard normal.")


class TrainingSpecIn(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_TRAINING]})

    loss: Loss = "mse"
    optimizer: OptimizerName = "sgd"
    learning_rate: float = Field(0.01, gt=0, le=100)
    momentum: float = Field(0.9, ge=0, lt=1)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    epsilon: float = Field(1e-8, gt=0, le=1)
    lr_schedule: ScheduleName = "constant"
    lr_decay: float = Field(0.5, gt=0, le=100)
    lr_decay_every: Integer = Field(100, ge=1)
    l2: float = Field(0.0, ge=0, le=100)
    epochs: Integer = Field(100, ge=1, le=MAX_STORED_INT)
    batch_size: Integer | None = Field(1, ge=1, description="1 is per sample; null is full batch.")
    shuffle: bool = True
    seed: Integer = Field(0, ge=0, le=2**32 - 1)
    update_rule: UpdateRule = Field(
        "standard",
        description="`dirty` propagates each layer's error through the already updated "
        "weights above it, as the notebook does.",
    )
    validation_split: float = Field(0.0, ge=0, lt=1)
    early_stopping_patience: Integer | None = Field(None, ge=1)
    early_stopping_min_delta: float = Field(0.0, ge=0)
    dtype: DType = "float64"


class LayerParameters(Input):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"weights": [[0.5, -0.25]], "bias": [0.1]}]}
    )

    weights: list[Row] = Field(description="Shape (n_out, n_in).")
    bias: Row = Field(description="Shape (n_out,).")


class ParametersIn(Input):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"layers": [{"weights": [[0.5, -0.25]], "bias": [0.1]}]}]}
    )

    layers: list[LayerParameters] = Field(min_length=1)


class LayerParametersRead(Output):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"weights": [[0.5, -0.25]], "bias": [0.1]}]}
    )

    weights: list[list[float]]
    bias: list[float]


# ----- datasets -----------------------------------------------------------------------


class GeneratorSpec(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"kind": "moons", "n_samples": 500, "noise": 0.1, "seed": 0}]
        }
    )

    kind: GeneratorKind
    n_samples: Integer = Field(200, ge=2)
    noise: float = Field(0.0, ge=0, le=10)
    seed: Integer = Field(0, ge=0, le=2**32 - 1)
    n_classes: Integer = Field(
        2, ge=2, le=20, description="More than 2 for spiral and gaussian only."
    )


class DatasetCreate(Input):
    """Either `inputs` and `targets`, or a `generator`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "xor",
                    "inputs": [[1, 1], [-1, 1], [1, -1], [-1, -1]],
                    "targets": [[1], [0], [0], [1]],
                },
                {
                    "name": "moons",
                    "generator": {"kind": "moons", "n_samples": 500, "noise": 0.1, "seed": 0},
                },
            ]
        }
    )

    name: str = Field(min_length=1, max_length=200)
    inputs: Rows | None = None
    targets: Rows | None = None
    generator: GeneratorSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "DatasetCreate":
        rows = self.inputs is not None or self.targets is not None
        if rows == (self.generator is not None):
            raise ValueError("give either inputs and targets, or a generator")
        if rows and (self.inputs is None or self.targets is None):
            raise ValueError("inputs and targets go together")
        return self


class DatasetRead(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0f8e3a6c2b9d4e1f8a7b6c5d4e3f2a1b",
                    "name": "xor",
                    "n_samples": 4,
                    "n_features": 2,
                    "n_targets": 1,
                    "source": {"kind": "rows"},
                    "created_at": "2026-11-28T10:00:00Z",
                }
            ]
        }
    )

    id: str
    name: str
    n_samples: int
    n_features: int
    n_targets: int
    source: dict[str, Any]
    created_at: datetime


class DatasetRows(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"inputs": [[1, 1], [-1, 1], [1, -1], [-1, -1]], "targets": [[1], [0], [0], [1]]}
            ]
        }
    )

    inputs: list[list[float]]
    targets: list[list[float]]


# ----- jobs ---------------------------------------------------------------------------


class JobCreate(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dataset_id": "0f8e3a6c2b9d4e1f8a7b6c5d4e3f2a1b",
                    "model_name": "xor-net",
                    "network": EXAMPLE_NETWORK,
                    "training": EXAMPLE_TRAINING,
                    "checkpoint_every": 50,
                }
            ]
        }
    )

    dataset_id: str = Field(min_length=1, max_length=64)
    model_name: Name | None = Field(
        None, description="Register the trained weights as the next version of this model."
    )
    network: NetworkSpecIn
    training: TrainingSpecIn = Field(default_factory=TrainingSpecIn)
    checkpoint_every: Integer = Field(
        10, ge=1, le=MAX_STORED_INT, description="Keep a weight snapshot every N epochs."
    )


class JobRead(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "4c1d2e3f5a6b7c8d9e0f1a2b3c4d5e6f",
                    "dataset_id": "0f8e3a6c2b9d4e1f8a7b6c5d4e3f2a1b",
                    "model_name": "xor-net",
                    "status": "running",
                    "epoch": 120,
                    "epochs_total": 500,
                    "progress": 0.24,
                    "loss": 0.0123,
                    "val_loss": None,
                    "error": None,
                    "stop_reason": None,
                    "attempts": 1,
                    "model_version": None,
                    "checkpoint_every": 50,
                    "spec": {
                        "network": {"layers": [2, 8, 1], "hidden_activation": "tanh"},
                        "training": {"epochs": 500},
                    },
                    "created_at": "2026-11-28T10:00:00Z",
                    "started_at": "2026-11-28T10:00:00Z",
                    "finished_at": None,
                }
            ]
        }
    )

    id: str
    dataset_id: str
    model_name: str | None
    status: JobStatus
    epoch: int = Field(description="Epochs finished so far.")
    epochs_total: int
    loss: float | None
    val_loss: float | None
    error: str | None
    stop_reason: str | None
    attempts: int
    model_version: int | None
    checkpoint_every: int
    spec: dict[str, Any] = Field(description="The network and training spec, defaults filled in.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @computed_field(description="epoch / epochs_total, from 0 to 1.")  # type: ignore[prop-decorator]
    @property
    def progress(self) -> float:
        return self.epoch / self.epochs_total if self.epochs_total else 0.0


class HistoryPoint(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "epoch": 1,
                    "loss": 0.2512,
                    "val_loss": None,
                    "rmse": 0.7088,
                    "accuracy": None,
                    "val_accuracy": None,
                    "learning_rate": 0.05,
                }
            ]
        }
    )

    epoch: int
    loss: float | None
    val_loss: float | None
    rmse: float | None
    accuracy: float | None
    val_accuracy: float | None
    learning_rate: float | None


class SnapshotSummary(Output):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"epoch": 50, "created_at": "2026-11-28T10:00:00Z"}]}
    )

    epoch: int
    created_at: datetime


class SnapshotRead(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"epoch": 50, "layers": [{"weights": [[0.5, -0.25]], "bias": [0.1]}]}]
        }
    )

    epoch: int
    layers: list[LayerParametersRead]


# ----- predictions ----------------------------------------------------------------------


class PredictRequest(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"inputs": [[1, 1], [-1, 1]]}]})

    inputs: Rows
    version: Integer | None = Field(
        None, ge=1, le=MAX_STORED_INT, description="A version number; default the latest."
    )
    alias: Name | None = Field(None, description="An alias such as `production`.")

    @model_validator(mode="after")
    def _one_selector(self) -> "PredictRequest":
        if self.version is not None and self.alias is not None:
            raise ValueError("give version or alias, not both")
        return self


class JobPredictRequest(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"inputs": [[1, 1]], "epoch": 50}]})

    inputs: Rows
    epoch: Integer | None = Field(
        None, ge=0, le=MAX_STORED_INT, description="A snapshot epoch; default the latest."
    )


class ModelRef(Output):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "xor-net", "version": 1}]})

    name: str
    version: int


class PredictResponse(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "outputs": [[0.98], [0.03]],
                    "probabilities": [[0.98], [0.03]],
                    "labels": [[1], [0]],
                    "model": {"name": "xor-net", "version": 1},
                }
            ]
        }
    )

    outputs: list[list[float]]
    probabilities: list[list[float]] | None = Field(
        None, description="For sigmoid and softmax outputs: the outputs as probabilities."
    )
    labels: list[list[int]] | None = Field(
        None, description="For classifiers: argmax (softmax) or output >= 0.5 (sigmoid)."
    )
    model: ModelRef | None = None
    epoch: int | None = None


# ----- models ---------------------------------------------------------------------------


class ModelRead(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "xor-net",
                    "description": None,
                    "latest_version": 2,
                    "aliases": {"production": 1},
                    "created_at": "2026-11-28T10:00:00Z",
                }
            ]
        }
    )

    name: str
    description: str | None
    latest_version: int | None
    aliases: dict[str, int]
    created_at: datetime


class ModelVersionRead(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "xor-net",
                    "version": 1,
                    "job_id": "4c1d2e3f5a6b7c8d9e0f1a2b3c4d5e6f",
                    "epoch": 500,
                    "network": {
                        "layers": [2, 8, 1],
                        "hidden_activation": "tanh",
                        "output_activation": "identity",
                        "init": "xavier_uniform",
                    },
                    "created_at": "2026-11-28T10:00:00Z",
                }
            ]
        }
    )

    name: str
    version: int
    job_id: str | None
    epoch: int
    network: dict[str, Any]
    created_at: datetime


class AliasSet(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": 1}]})

    version: Integer = Field(ge=1, le=MAX_STORED_INT)


# ----- trace ----------------------------------------------------------------------------


class TraceRequest(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "network": {"layers": [2, 2, 1], "hidden_activation": "relu"},
                    "parameters": {
                        "layers": [
                            {
                                "weights": [[0.97873798, 2.2408932], [1.86755799, -0.97727788]],
                                "bias": [1.76405235, 0.40015721],
                            },
                            {"weights": [[-0.15135721, -0.10321885]], "bias": [0.95008842]},
                        ]
                    },
                    "input": [1, 1],
                    "target": [1],
                    "loss": "mse",
                    "learning_rate": 0.01,
                    "update_rule": "dirty",
                }
            ]
        }
    )

    network: NetworkSpecIn
    parameters: ParametersIn
    input: Row
    target: Row
    loss: Loss = "mse"
    learning_rate: float = Field(0.01, gt=0, le=100)
    update_rule: UpdateRule = "standard"


class ForwardValues(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"aggregate": [4.98368353, 1.29043732], "activation": [4.98368353, 1.29043732]}
            ]
        }
    )

    aggregate: list[float]
    activation: list[float]


class BackwardValues(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "delta": [-0.93742547],
                    "weight_gradient": [[-4.67183186, -1.20968881]],
                    "bias_gradient": [-0.93742547],
                }
            ]
        }
    )

    delta: list[float]
    weight_gradient: list[list[float]]
    bias_gradient: list[float]


class UpdatedParameters(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"layers": [{"weights": [[-0.10463889, -0.09112196]], "bias": [0.95946267]}]}
            ]
        }
    )

    layers: list[LayerParametersRead]


class TraceResponse(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "forward": [{"aggregate": [0.06257453], "activation": [0.06257453]}],
                    "output": [0.06257453],
                    "loss": 0.43938325,
                    "output_error": [-0.93742547],
                    "backward": [
                        {
                            "delta": [-0.93742547],
                            "weight_gradient": [[-4.67183186, -1.20968881]],
                            "bias_gradient": [-0.93742547],
                        }
                    ],
                    "updated": {
                        "layers": [{"weights": [[-0.10463889, -0.09112196]], "bias": [0.95946267]}]
                    },
                }
            ]
        }
    )

    forward: list[ForwardValues] = Field(description="Per layer, the first hidden layer first.")
    output: list[float]
    loss: float
    output_error: list[float] = Field(description="d(loss)/d(output).")
    backward: list[BackwardValues]
    updated: UpdatedParameters


# ----- problems and probes --------------------------------------------------------------


class ErrorItem(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "loc": ["body", "network", "layers", 0],
                    "msg": "input width 3 does not match the data's 2 features",
                }
            ]
        }
    )

    loc: list[str | int]
    msg: str


class Problem(Output):
    """An `application/problem+json` body (RFC 9457)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Invalid request",
                    "status": 422,
                    "detail": "network.layers[0]: input width 3 does not match "
                    "the data's 2 features",
                    "errors": [
                        {
                            "loc": ["body", "network", "layers", 0],
                            "msg": "input width 3 does not match the data's 2 features",
                        }
                    ],
                }
            ]
        }
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ErrorItem] | None = None


class Health(Output):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"] = "ok"


class Readiness(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "database": True,
                    "schema_revision": "0002_workers",
                    "head_revision": "0002_workers",
                }
            ]
        }
    )

    status: Literal["ready", "unavailable"]
    database: bool
    schema_revision: str | None
    head_revision: str
