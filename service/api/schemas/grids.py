"""Grid predictions: a 2-input model's outputs on an N x N grid of points, in one call
(the pictures of a decision boundary or a fitted surface)."""

import math
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from service.api.schemas.common import FROM_WHOLE_FLOAT, Input, Name, Output
from service.api.schemas.predictions import ClassName, Epoch, ModelRef, Version

DEFAULT_RESOLUTION = 50
# 200 x 200 = 40,000 rows: a picture finer than a dashboard draws, still one quick batch.
MAX_RESOLUTION = 200

Range = Annotated[
    list[float],
    Field(
        min_length=2,
        max_length=2,
        description="`[min, max]`, finite, min < max. Default: the training data's extent "
        "plus a 10% margin on each side (see `range_source` in the answer).",
        examples=[[-1.5, 1.5]],
    ),
]
Resolution = Annotated[
    int,
    Field(
        ge=2,
        le=MAX_RESOLUTION,
        description="Points per axis: the grid has resolution x resolution points.",
    ),
    FROM_WHOLE_FLOAT,
]
RangeSource = Literal["request", "dataset", "preprocessing", "default"]


class GridArea(Input):
    """Where to predict: the ranges of the two inputs and the points per axis."""

    x_range: Range | None = None
    y_range: Range | None = None
    resolution: Resolution = DEFAULT_RESOLUTION

    @field_validator("x_range", "y_range")
    @classmethod
    def _min_below_max(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            low, high = value
            if not low < high:
                raise ValueError("must be [min, max] with min < max")
            if not math.isfinite(high - low):
                raise ValueError("max - min must be a finite number")
        return value


class GridRequest(GridArea):
    """`version` or `alias`, not both (as for predict); every field is optional."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"x_range": [-1.5, 1.5], "y_range": [-1.5, 1.5], "resolution": 50}, {}],
            # `_one_selector`'s rule, as in PredictRequest.
            "not": {
                "required": ["version", "alias"],
                "properties": {"version": {"type": "integer"}, "alias": {"type": "string"}},
            },
        }
    )

    version: Version | None = Field(None, description="A version number; default the latest.")
    alias: Name | None = Field(None, description="An alias such as `production`.")

    @model_validator(mode="after")
    def _one_selector(self) -> "GridRequest":
        if self.version is not None and self.alias is not None:
            raise ValueError("give version or alias, not both")
        return self


class JobGridRequest(GridArea):
    """Every field is optional."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"epoch": 50, "resolution": 40}]})

    epoch: Epoch | None = Field(None, description="A snapshot epoch; default the latest.")


class GridResponse(Output):
    """The network's outputs at every point (x[j], y[i]) of the grid: row i of `outputs`
    (and of `probabilities`) is y[i], so the grid reads like an image with y rows, and
    `outputs[i][j]` is what predict answers as `outputs` for the row [x[j], y[i]]
    (`probabilities` likewise: null for regression). The model route names the model
    version, the job route the job and snapshot epoch."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "x": [-1.0, 1.0],
                    "y": [-1.0, 1.0],
                    "x_range": [-1.0, 1.0],
                    "y_range": [-1.0, 1.0],
                    "resolution": 2,
                    "range_source": "request",
                    "outputs": [[[0.03, 0.97], [0.9, 0.1]], [[0.88, 0.12], [0.05, 0.95]]],
                    "probabilities": [[[0.03, 0.97], [0.9, 0.1]], [[0.88, 0.12], [0.05, 0.95]]],
                    "classes": ["cat", "dog"],
                    "model": {"name": "pets", "version": 1},
                },
                {
                    "x": [0.0, 1.0],
                    "y": [0.0, 1.0],
                    "x_range": [0.0, 1.0],
                    "y_range": [0.0, 1.0],
                    "resolution": 2,
                    "range_source": "dataset",
                    "outputs": [[[0.1], [0.9]], [[0.9], [0.1]]],
                    "probabilities": None,
                    "classes": None,
                    "job_id": "0f8e3a6c2b9d4e1f8a7b6c5d4e3f2a1b",
                    "epoch": 50,
                },
            ]
        }
    )

    x: list[float] = Field(description="The first input's values, `resolution` of them, ascending.")
    y: list[float] = Field(description="The second input's values, ascending: one per row.")
    x_range: list[float] = Field(description="`[min, max]` of `x`.")
    y_range: list[float] = Field(description="`[min, max]` of `y`.")
    resolution: int
    range_source: RangeSource = Field(
        description="Where ranges not given in the request came from: `dataset`, the extent "
        "of the data the model was trained on plus a 10% margin; `preprocessing`, when that "
        "dataset is unknown (an uploaded version, a deleted job), the training inputs' "
        "extent as the model's input scaling recorded it (min and max for `minmax`, mean "
        "+- 2 standard deviations for `standardize`) plus the margin; `default`, [-1, 1] "
        "when neither is known; `request` when the request gave both ranges."
    )
    outputs: list[list[list[float]]] = Field(
        description="`outputs[i][j]`: the network's outputs at (x[j], y[i]), in the targets' "
        "units for regression."
    )
    probabilities: list[list[list[float]]] | None = Field(
        None, description="As predict's `probabilities`, per point; null for regression."
    )
    classes: list[ClassName] | None = Field(
        None, description="The model's classes, in the order of `probabilities`."
    )
    model: ModelRef | None = Field(None, description="The model route's version.")
    job_id: str | None = Field(None, description="The job route's job.")
    epoch: int | None = Field(None, description="The job route's snapshot epoch.")
