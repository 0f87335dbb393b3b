"""Network and training specs, and explicit parameters (weights and biases by layer)."""

from dataclasses import MISSING
from typing import Annotated, Any

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from service.api.schemas.common import (
    FROM_WHOLE_FLOAT,
    DType,
    Engine,
    HiddenActivation,
    Initializer,
    Input,
    InputScaling,
    Integer,
    Loss,
    OptimizerName,
    Output,
    OutputActivation,
    Row,
    ScheduleName,
    TargetScaling,
    UpdateRule,
)
from service.core.spec import (
    Bounds,
    NetworkSpec,
    PreprocessingSpec,
    TrainingSpec,
    bounds_of,
    spec_fields,
)

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


def core_field(spec: type, name: str, **extra: Any) -> Any:
    """The pydantic `Field` of `spec.name` with the default and bounds the core declares:
    they live in service.core.spec alone, descriptions and examples here. A list's bounds
    are its items' and a nullable integer's its non-null values': both go on the type, with
    `core_bounds`."""
    declared = spec_fields(spec)[name]
    default = ... if declared.default is MISSING else declared.default
    length: Bounds | None = declared.metadata.get("length")
    if length is not None:
        extra.update(min_length=length.ge, max_length=length.le)
    elif declared.type != int | None:
        extra.update(bounds_of(spec, name).as_dict())
    return Field(default, **extra)


def core_bounds(spec: type, name: str) -> Any:
    """The bounds the core declares for `spec.name`, for a list's item type or a nullable
    field's non-null type: `Annotated[int, core_bounds(...), FROM_WHOLE_FLOAT] | None`."""
    bounds: dict[str, Any] = bounds_of(spec, name).as_dict()
    return Field(**bounds)


LayerWidth = Annotated[int, core_bounds(NetworkSpec, "layers"), FROM_WHOLE_FLOAT]
BatchSize = Annotated[int, core_bounds(TrainingSpec, "batch_size"), FROM_WHOLE_FLOAT]
Patience = Annotated[int, core_bounds(TrainingSpec, "early_stopping_patience"), FROM_WHOLE_FLOAT]


class NetworkSpecIn(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_NETWORK]})

    layers: list[LayerWidth] = core_field(
        NetworkSpec,
        "layers",
        description="Every layer's width, input and output included.",
        examples=[[2, 8, 1]],
    )
    hidden_activation: HiddenActivation = core_field(NetworkSpec, "hidden_activation")
    output_activation: OutputActivation = core_field(
        NetworkSpec,
        "output_activation",
        description="Left out on a labelled dataset: `softmax`, or `sigmoid` when the output "
        "is one unit wide (two classes). The default shown is regression's.",
    )
    init: Initializer = core_field(
        NetworkSpec,
        "init",
        description="`auto` is He uniform for relu and leaky_relu layers and Glorot (Xavier) "
        "uniform for the others, biases zero; `normal` is the notebook's standard normal.",
    )


def _training(name: str, **extra: Any) -> Any:
    return core_field(TrainingSpec, name, **extra)


class TrainingSpecIn(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_TRAINING]})

    loss: Loss = _training(
        "loss",
        description="Left out: the one that pairs with the output activation "
        "(`categorical_crossentropy` for softmax, `binary_crossentropy` for sigmoid); the "
        "default shown is regression's.",
    )
    optimizer: OptimizerName = _training("optimizer")
    learning_rate: float = _training("learning_rate")
    momentum: float = _training("momentum")
    beta1: float = _training("beta1")
    beta2: float = _training("beta2")
    epsilon: float = _training("epsilon")
    lr_schedule: ScheduleName = _training("lr_schedule")
    lr_decay: float = _training(
        "lr_decay",
        description="With `step` and `exponential` the factor the rate is multiplied by "
        "every `lr_decay_every` epochs, so at most 1 there (a 422 on `training.lr_decay` "
        "otherwise); with `inverse_time` the rate of decay, any size.",
    )
    lr_decay_every: Integer = _training("lr_decay_every")
    l2: float = _training("l2")
    epochs: Integer = _training("epochs")
    batch_size: BatchSize | None = _training(
        "batch_size", description="1 is per sample; null is full batch."
    )
    shuffle: bool = _training("shuffle")
    seed: Integer = _training("seed")
    update_rule: UpdateRule = _training(
        "update_rule",
        description="`dirty` propagates each layer's error through the already updated "
        "weights above it, as the notebook does.",
    )
    validation_split: float = _training("validation_split")
    early_stopping_patience: Patience | None = _training("early_stopping_patience")
    early_stopping_min_delta: float = _training("early_stopping_min_delta")
    dtype: DType = _training("dtype")
    engine: Engine = _training(
        "engine",
        description="`numpy` is the reference engine; `compiled` runs many small-batch "
        "epochs in compiled code (float64 only); `auto` picks `compiled` for small networks "
        "and batches. A resumed run keeps the engine its checkpoint was made by.",
    )


EXAMPLE_PREPROCESSING: JsonDict = {"inputs": "standardize", "targets": "none"}


class PreprocessingSpecIn(Input):
    """How the data is scaled for training. The statistics are fitted on the training part
    (after the validation split) and stored with the model, so predictions take raw rows
    and answer in raw units."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_PREPROCESSING]})

    inputs: InputScaling = core_field(
        PreprocessingSpec,
        "inputs",
        description="`standardize`: zero mean, unit variance per column; `minmax`: each "
        "column onto [0, 1]; constant columns are left unscaled.",
    )
    targets: TargetScaling = core_field(
        PreprocessingSpec,
        "targets",
        description="`standardize` is for regression targets only; outputs are scaled back.",
    )


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
