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


# A class as the user named it in the labels the model was trained on.
ClassName = str | int | bool


class PredictResponse(Output):
    """A model trained on labels (it has `classes`) answers `labels` as class names, one
    per row, and (for sigmoid and softmax outputs) `probabilities` one per class in
    `classes` order. Other classifiers (models trained on 0/1 or one-hot targets) answer
    `labels` as `[[index]]` rows and `probabilities` as their outputs; regression models
    answer `outputs` only, in the targets' own units (the model's preprocessing is applied
    and inverted inside)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "outputs": [[0.02, 0.98], [0.97, 0.03]],
                    "probabilities": [[0.02, 0.98], [0.97, 0.03]],
                    "labels": ["dog", "cat"],
                    "classes": ["cat", "dog"],
                    "model": {"name": "pets", "version": 1},
                },
                {
                    "outputs": [[0.98], [0.03]],
                    "probabilities": [[0.98], [0.03]],
                    "labels": [[1], [0]],
                    "model": {"name": "xor-net", "version": 1},
                },
            ]
        }
    )

    outputs: list[list[float]] = Field(
        description="The network's outputs per row, in the targets' units for regression."
    )
    probabilities: list[list[float]] | None = Field(
        None,
        description="For sigmoid and softmax outputs: per row, one probability per class "
        "in `classes` order (a width-1 sigmoid gives [1 - p, p]); without `classes`, the "
        "outputs themselves.",
    )
    labels: list[ClassName] | list[list[int]] | None = Field(
        None,
        description="With `classes` (a model trained on labels), the predicted class name "
        "per row (strings stay strings, integers integers, booleans booleans): argmax, or "
        "output >= 0.5 for one output. Without, for sigmoid and softmax outputs, `[index]` "
        "per row: argmax (softmax) or output >= 0.5 (sigmoid).",
    )
    classes: list[ClassName] | None = Field(
        None, description="The model's classes, in the order of `probabilities`."
    )
    model: ModelRef | None = None
    epoch: int | None = None
