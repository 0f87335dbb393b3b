"""Datasets: created from rows or a generator, read back with their rows."""

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from service.api.schemas.common import GeneratorKind, Input, Integer, Output, Rows
from service.core.spec import MAX_SEED


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


class DatasetCreate(Input):
    """Either `inputs` and `targets`, or a `generator`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "xor",
                    "inputs": [[1, 1], [-1, 1], [1, -1], [-1, -1]],
                    "targets": [[1], [0], [0], [1]],
                },
                {
                    "name": "moons",
                    "generator": {"kind": "moons", "n_samples": 500, "noise": 0.1, "seed": 0},
                },
            ]
        }
    )

    name: str = Field(min_length=1, max_length=200)
    inputs: Rows | None = None
    targets: Rows | None = None
    generator: GeneratorSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "DatasetCreate":
        rows = self.inputs is not None or self.targets is not None
        if rows == (self.generator is not None):
            raise ValueError("give either inputs and targets, or a generator")
        if rows and (self.inputs is None or self.targets is None):
            raise ValueError("inputs and targets go together")
        return self


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


class DatasetRows(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"inputs": [[1, 1], [-1, 1], [1, -1], [-1, -1]], "targets": [[1], [0], [0], [1]]}
            ]
        }
    )

    inputs: list[list[float]]
    targets: list[list[float]]
