"""Grid predictions: the points of an N x N grid over a 2-input model's inputs, their
ranges (the request's, else the training data's extent plus a margin), and the answer,
predicted through the one predict path (`predict_off_loop`)."""

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from service.api.deps import read_sessions
from service.api.limits import check_prediction_size
from service.api.predictions import predict_off_loop
from service.api.schemas.grids import GridArea, RangeSource
from service.core import Model, SpecError
from service.db import datasets as dataset_queries
from service.errors import Invalid

# Of the range's width, on each side: the data's outermost points are not on the edge.
MARGIN = 0.1
# Of a standardized input, mean +- this many standard deviations stand for its extent.
STANDARD_DEVIATIONS = 2.0
DEFAULT_RANGE = (-1.0, 1.0)
RANGES = ("x_range", "y_range")

Extent = tuple[np.ndarray, np.ndarray]
# Given a read session, the id of the job whose dataset the model was trained on, if known.
TrainingJob = Callable[[Session], str | None]


def check_two_inputs(trained: Model, what: str, location: list[str | int]) -> None:
    """A grid spans two inputs: refuse other models, naming `what` they are."""
    n_inputs = trained.spec.n_inputs
    if n_inputs != 2:
        raise Invalid(
            f"grid predictions need a model with exactly 2 inputs; {what} has {n_inputs}",
            [{"loc": location, "msg": f"the model has {n_inputs} inputs, not 2"}],
        )


async def grid_answer(
    request: Request,
    trained: Model,
    area: GridArea,
    training_job: TrainingJob,
    **reference: Any,
) -> dict[str, Any]:
    """The grid body for `area` (the body's fields) of a 2-input model; `reference` names
    the model version or the job snapshot in the answer."""
    n = area.resolution
    # The grid is n x n prediction rows: the same limits as a predict request of as many.
    check_prediction_size(request.app.state.settings, trained.spec, n * n, field="resolution")
    x_range, y_range, source = area.x_range, area.y_range, "request"
    if x_range is None or y_range is None:
        extent = await run_in_threadpool(_training_extent, read_sessions(request), training_job)
        (default_x, default_y), source = default_ranges(trained, extent)
        x_range, y_range = x_range or default_x, y_range or default_y
    x, y, inputs = grid_points(x_range, y_range, n)
    try:
        prediction = await predict_off_loop(trained, inputs)
    except SpecError:
        # The points are the ranges' doing: name them, not predict's `inputs`.
        raise Invalid(
            "the model's outputs overflow on this grid (its values are too large): choose "
            "smaller ranges",
            [{"loc": ["body", axis], "msg": "too large for this model"} for axis in RANGES],
        ) from None
    probabilities = prediction.get("probabilities")
    return {
        "x": x,
        "y": y,
        "x_range": x_range,
        "y_range": y_range,
        "resolution": n,
        "range_source": source,
        # Rows of the batch are the grid's points row by row (y[0]'s first): reshaped, row
        # i is y[i] and column j is x[j].
        "outputs": prediction["outputs"].reshape(n, n, -1),
        "probabilities": None if probabilities is None else probabilities.reshape(n, n, -1),
        "classes": prediction.get("classes"),
        **reference,
    }


def grid_points(
    x_range: list[float], y_range: list[float], resolution: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The axes `(resolution,)` each and the points `(resolution**2, 2)`: (x[j], y[i]) at
    row i * resolution + j."""
    x = np.linspace(x_range[0], x_range[1], resolution)
    y = np.linspace(y_range[0], y_range[1], resolution)
    grid_x, grid_y = np.meshgrid(x, y)
    return x, y, np.column_stack([grid_x.ravel(), grid_y.ravel()])


def default_ranges(
    trained: Model, extent: Extent | None
) -> tuple[tuple[list[float], list[float]], RangeSource]:
    """The x and y ranges where the request gave none, and what they came from: the
    training data's extent; without it, the extent the model's input scaling recorded of
    its training inputs; without that, DEFAULT_RANGE. The first two get the margin."""
    source: RangeSource
    scaler = None if trained.preprocessing is None else trained.preprocessing.inputs
    if extent is not None:
        lows, highs = extent
        source = "dataset"
    elif scaler is not None:
        if scaler.kind == "minmax":
            lows, highs = scaler.shift, scaler.shift + scaler.scale
        else:
            spread = STANDARD_DEVIATIONS * scaler.scale
            lows, highs = scaler.shift - spread, scaler.shift + spread
        source = "preprocessing"
    else:
        return (list(DEFAULT_RANGE), list(DEFAULT_RANGE)), "default"
    x_range, y_range = (
        with_margin(float(low), float(high)) for low, high in zip(lows, highs, strict=True)
    )
    return (x_range, y_range), source


def with_margin(low: float, high: float) -> list[float]:
    """`[low, high]` widened by MARGIN of its width on each side; a single value (a
    constant column) by 1, or by MARGIN of itself where that is more."""
    width = high - low
    margin = MARGIN * width if width > 0 else max(1.0, MARGIN * abs(low))
    widened = [low - margin, high + margin]
    # Data near float64's limits: the margin would overflow.
    return widened if math.isfinite(widened[1] - widened[0]) else [low, high]


def _training_extent(sessions: sessionmaker[Session], training_job: TrainingJob) -> Extent | None:
    with sessions() as session:
        job_id = training_job(session)
        return None if job_id is None else dataset_queries.training_inputs_extent(session, job_id)
