"""Predictions, with a registered model or with a job's snapshot."""

from pydantic import ConfigDict, Field, model_validator

from service.api.schemas.common import MAX_STORED_INT, Input, Integer, Name, Output, Rows


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
