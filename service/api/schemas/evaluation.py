"""Evaluation of a registered model or a job's snapshot on labelled data: a stored dataset
or rows given inline."""

from typing import Annotated, Any

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from service.api.schemas.common import Id, Input, Label, Name, Output, Rows
from service.api.schemas.predictions import ClassName, Epoch, ModelRef, Version

# Strict like every request body: `1.0` is not the class `1`, nor `"1"` the class 1.
ClassNames = Annotated[list[Label], Field(min_length=1)]

DATA_RULE = (
    "Give `dataset_id`, or `inputs` with `labels` (class names, for classifiers) or "
    "`targets` (rows, for regression models or encoded classifier targets); inputs rows "
    "as wide as the model's input and one label or targets row per inputs row."
)


# JSON Schema types of the fields given (not null), for the rules between them.
GIVEN = {
    "dataset_id": {"type": "string"},
    "inputs": {"type": "array"},
    "labels": {"type": "array"},
    "targets": {"type": "array"},
    "version": {"type": "integer"},
    "alias": {"type": "string"},
}


def none_together(*pairs: tuple[str, str]) -> dict[str, Any]:
    """A schema's `not`: no pair of these fields both given."""
    return {
        "anyOf": [
            {"required": list(pair), "properties": {name: GIVEN[name] for name in pair}}
            for pair in pairs
        ]
    }


DATA_PAIRS = (
    ("dataset_id", "inputs"),
    ("dataset_id", "labels"),
    ("dataset_id", "targets"),
    ("labels", "targets"),
)


class EvaluationData(Input):
    dataset_id: Id | None = Field(None, description="A stored dataset to evaluate on.")
    inputs: Rows | None = Field(None, description="Raw input rows, as for a prediction.")
    labels: ClassNames | None = Field(
        None, description="One class name per inputs row, of the model's classes."
    )
    targets: Rows | None = Field(None, description="One targets row per inputs row.")

    # Field validators, so an error names the field that should not be there.
    @field_validator("inputs")
    @classmethod
    def _not_with_dataset(cls, inputs: Any, info: ValidationInfo) -> Any:
        if inputs is not None and info.data.get("dataset_id") is not None:
            raise ValueError("give dataset_id or inputs, not both")
        return inputs

    @field_validator("labels", "targets")
    @classmethod
    def _with_inputs(cls, answers: Any, info: ValidationInfo) -> Any:
        if answers is None:
            return answers
        if info.data.get("dataset_id") is not None:
            raise ValueError("a dataset has its own; give them with inputs instead")
        if info.field_name == "targets" and info.data.get("labels") is not None:
            raise ValueError("give labels or targets, not both")
        return answers

    @model_validator(mode="after")
    def _one_source(self) -> "EvaluationData":
        if self.dataset_id is None and (
            self.inputs is None or (self.labels is None and self.targets is None)
        ):
            raise ValueError("give dataset_id, or inputs with labels or targets")
        return self


class EvaluateRequest(EvaluationData):
    model_config = ConfigDict(
        json_schema_extra={
            "description": f"{DATA_RULE} `version` or `alias`, not both.",
            "not": none_together(*DATA_PAIRS, ("version", "alias")),
            "examples": [
                {"inputs": [[5.1, 3.5], [6.7, 3.0]], "labels": ["setosa", "virginica"]},
                {"dataset_id": "0f8e3a6c2b9d4e1f8a7b6c5d4e3f2a1b", "alias": "production"},
            ],
        }
    )

    version: Version | None = Field(None, description="A version number; default the latest.")
    alias: Name | None = Field(None, description="An alias such as `production`.")

    @model_validator(mode="after")
    def _one_selector(self) -> "EvaluateRequest":
        if self.version is not None and self.alias is not None:
            raise ValueError("give version or alias, not both")
        return self


class JobEvaluateRequest(EvaluationData):
    model_config = ConfigDict(
        json_schema_extra={
            "description": DATA_RULE,
            "not": none_together(*DATA_PAIRS),
            "examples": [{"dataset_id": "0f8e3a6c2b9d4e1f8a7b6c5d4e3f2a1b", "epoch": 50}],
        }
    )

    epoch: Epoch | None = Field(None, description="A snapshot epoch; default the latest.")


class ConfusionMatrix(Output):
    classes: list[ClassName] = Field(description="The order of the matrix's rows and columns.")
    matrix: list[list[int]] = Field(
        description="Row i, column j: samples of class i predicted as class j."
    )


class EvaluateResponse(Output):
    """`loss` is on the problem the network is trained on (inputs and targets scaled as
    the model's preprocessing says), comparable to the job's history; `metrics` are in
    the data's own units."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "n_samples": 4,
                    "loss": 0.21,
                    "metrics": {"accuracy": 0.75, "precision": 0.83, "recall": 0.75, "f1": 0.73},
                    "confusion_matrix": {"classes": ["cat", "dog"], "matrix": [[2, 0], [1, 1]]},
                    "model": {"name": "pets", "version": 1},
                }
            ]
        }
    )

    n_samples: int
    loss: float | None = Field(
        description="The model's loss on the scaled problem (as in the job's history); "
        "null if not finite."
    )
    metrics: dict[str, float | None] = Field(
        description="Classifiers: accuracy and macro precision, recall and F1. Regression: "
        "mae, rmse and r2 in the targets' own units. Null where not finite."
    )
    confusion_matrix: ConfusionMatrix | None = Field(
        description="For classifiers; null for regression."
    )
    model: ModelRef | None = None
    epoch: int | None = None
