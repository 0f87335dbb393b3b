"""Predictions, with a registered model or with a job's snapshot."""

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from service.api.schemas.common import (
    FROM_WHOLE_FLOAT,
    MAX_STORED_INT,
    Input,
    Name,
    Output,
    Rows,
)

Version = Annotated[int, Field(ge=1, le=MAX_STORED_INT), FROM_WHOLE_FLOAT]
Epoch = Annotated[int, Field(ge=0, le=MAX_STORED_INT), FROM_WHOLE_FLOAT]


class PredictRequest(Input):
    """`version` or `alias`, not both; `inputs` rows as wide as the model's input (the
    model's, so checked beyond this schema)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"inputs": [[1, 1], [-1, 1]]}],
            # `_one_selector`'s rule: not a version and an alias (null is neither).
            "not": {
                "required": ["version", "alias"],
                "properties": {"version": {"type": "integer"}, "alias": {"type": "string"}},
            },
        }
    )

    inputs: Rows
    version: Version | None = Field(None, description="A version number; default the latest.")
    alias: Name | None = Field(None, description="An alias such as `production`.")

    @model_validator(mode="after")
    def _one_selector(self) -> "PredictRequest":
        if self.version is not None and self.alias is not None:
            raise ValueError("give version or alias, not both")
        return self


class JobPredictRequest(Input):
    """`inputs` rows as wide as the model's input."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"inputs": [[1, 1]], "epoch": 50}]})

    inputs: Rows
    epoch: Epoch | None = Field(None, description="A snapshot epoch; default the latest.")


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
