"""Network and training specs, and explicit parameters (weights and biases by layer)."""

from typing import Annotated

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from service.api.schemas.common import (
    MAX_STORED_INT,
    DType,
    HiddenActivation,
    Initializer,
    Input,
    Integer,
    Loss,
    OptimizerName,
    Output,
    OutputActivation,
    Row,
    ScheduleName,
    UpdateRule,
)

MAX_LAYER_WIDTH = 4096

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
