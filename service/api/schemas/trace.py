"""One traced backprop step: its request and every intermediate value."""

from pydantic import ConfigDict, Field

from service.api.schemas.common import Input, Loss, Output, Row, UpdateRule
from service.api.schemas.specs import (
    LayerParametersRead,
    NetworkSpecIn,
    ParametersIn,
    core_field,
)
from service.core.spec import TrainingSpec


class TraceRequest(Input):
    """Rules between fields, checked beyond this schema: the loss must fit the output
    activation, and the parameters the network's layer shapes."""

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
    learning_rate: float = core_field(TrainingSpec, "learning_rate")
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
