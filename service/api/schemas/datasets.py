"""Datasets: created from rows or a generator, read back with their rows."""

from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, ConfigDict, Discriminator, Field, Tag

from service.api.schemas.common import TEXT_PATTERN, GeneratorKind, Input, Integer, Output, Rows
from service.core.spec import MAX_SEED

DatasetName = Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)]


class GeneratorSpec(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"kind": "moons", "n_samples": 500, "noise": 0.1, "seed": 0}]
        }
    )

    kind: GeneratorKind
    n_samples: Integer = Field(200, ge=2)
    noise: float = Field(0.0, ge=0, le=10)
    seed: Integer = Field(0, ge=0, le=MAX_SEED)
    n_classes: Integer = Field(
        2, ge=2, le=20, description="More than 2 for spiral and gaussian only."
    )


class DatasetFromRows(Input):
    """A dataset from explicit rows: as many `targets` rows as `inputs` rows, each list's
    rows all of one width."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "xor",
                    "inputs": [[1, 1], [-1, 1], [1, -1], [-1, -1]],
                    "targets": [[1], [0], [0], [1]],
                }
            ]
        }
    )

    name: DatasetName
    inputs: Rows
    targets: Rows
    # So a route reads `body.generator` of either kind of body.
    generator: ClassVar[None] = None


class DatasetFromGenerator(Input):
    """A generated dataset."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "moons",
                    "generator": {"kind": "moons", "n_samples": 500, "noise": 0.1, "seed": 0},
                }
            ]
        }
    )

    name: DatasetName
    generator: GeneratorSpec
    inputs: ClassVar[None] = None
    targets: ClassVar[None] = None


def _source(body: Any) -> str:
    return "generator" if isinstance(body, DatasetFromGenerator) else "rows"


def _one_source(body: Any) -> Any:
    """The body validated as the kind its keys say, so errors name the body's own fields
    (a tagged union would put the tag in front of them)."""
    if isinstance(body, DatasetFromRows | DatasetFromGenerator):
        return body
    if isinstance(body, dict):
        rows = "inputs" in body or "targets" in body
        if rows == ("generator" in body):
            raise ValueError("give either inputs and targets, or a generator")
        if not rows:
            return DatasetFromGenerator.model_validate(body)
    return DatasetFromRows.model_validate(body)


# Either `inputs` and `targets`, or a `generator`: a `oneOf` in the JSON Schema.
DatasetCreate = Annotated[
    Annotated[DatasetFromRows, Tag("rows")] | Annotated[DatasetFromGenerator, Tag("generator")],
    Discriminator(_source),
    BeforeValidator(_one_source),
    Field(
        title="DatasetCreate",
        description="Either `inputs` and `targets`, or a `generator`. The size limits "
        "(BACKPROP_MAX_DATASET_ROWS, BACKPROP_MAX_FEATURES) are the server's settings.",
    ),
]


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


class SampleRead(Output):
    """One row of a dataset: its position, its inputs and its targets."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"index": 0, "inputs": [1, 1], "targets": [1]}]}
    )

    index: int
    inputs: list[float]
    targets: list[float]
