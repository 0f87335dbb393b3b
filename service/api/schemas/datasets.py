"""Datasets: created from rows or a generator, read back with their rows."""

from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import InitErrorDetails, PydanticCustomError

from service.api.schemas.common import (
    TEXT_PATTERN,
    GeneratorKind,
    Input,
    Integer,
    Label,
    Output,
    Rows,
    Task,
)
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


def _not_null(schema: JsonDict) -> None:
    """Show an optional field as its non-null type: it may be left out, not sent as null."""
    options = schema.pop("anyOf")
    assert isinstance(options, list)
    schema.update(next(o for o in options if isinstance(o, dict) and o.get("type") != "null"))
    schema.pop("default", None)


class DatasetFromRows(Input):
    """A dataset from explicit rows: `inputs`, and either `targets` (regression: one row of
    numbers per input row) or `labels` (classification: one class per input row, all
    strings, all integers or all booleans). Each list's rows are all of one width."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "xor",
                    "inputs": [[1, 1], [-1, 1], [1, -1], [-1, -1]],
                    "targets": [[1], [0], [0], [1]],
                },
                {
                    "name": "pets",
                    "inputs": [[4.1, 30], [25.0, 60], [3.8, 28], [30.2, 65]],
                    "labels": ["cat", "dog", "cat", "dog"],
                },
            ],
            "oneOf": [{"required": ["targets"]}, {"required": ["labels"]}],
        }
    )

    name: DatasetName
    inputs: Rows
    targets: Rows | None = Field(
        None,
        description="Regression targets; or give `labels`.",
        json_schema_extra=_not_null,
    )
    labels: Annotated[list[Label], Field(min_length=1)] | None = Field(
        None,
        description="One class per row instead of `targets`: the dataset is then for "
        "classification, its classes the distinct labels, sorted.",
        json_schema_extra=_not_null,
    )
    # So a route reads `body.generator` of either kind of body.
    generator: ClassVar[None] = None

    @model_validator(mode="before")
    @classmethod
    def _targets_or_labels(cls, data: Any) -> Any:
        """Exactly one of `targets` and `labels`, not null, as the JSON Schema's `oneOf`
        says; a missing one is reported as the missing `targets`, the field a client most
        likely forgot."""
        if not isinstance(data, dict):
            return data
        given = [key for key in ("targets", "labels") if key in data]
        if len(given) == 2:
            raise _field_error("labels", "give either targets or labels, not both", data)
        if not given:
            raise _field_error("targets", "give targets (regression) or labels (classes)", data)
        if data[given[0]] is None:
            raise _field_error(given[0], "must be a list, not null", data)
        return data


def _field_error(field: str, message: str, data: Any) -> ValidationError:
    error = PydanticCustomError("value_error", message)
    details = InitErrorDetails(type=error, loc=(field,), input=data)
    return ValidationError.from_exception_data(DatasetFromRows.__name__, [details])


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
    generator: GeneratorSpec = Field(
        description="`sine` makes regression targets; the other kinds labels 0 to n_classes - 1."
    )
    inputs: ClassVar[None] = None
    targets: ClassVar[None] = None
    labels: ClassVar[None] = None


def _source(body: Any) -> str:
    return "generator" if isinstance(body, DatasetFromGenerator) else "rows"


def _one_source(body: Any) -> Any:
    """The body validated as the kind its keys say, so errors name the body's own fields
    (a tagged union would put the tag in front of them)."""
    if isinstance(body, DatasetFromRows | DatasetFromGenerator):
        return body
    if isinstance(body, dict):
        rows = "inputs" in body or "targets" in body or "labels" in body
        if rows == ("generator" in body):
            raise ValueError("give either inputs with targets or labels, or a generator")
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
        description="Either `inputs` with `targets` or `labels`, or a `generator`. The size limits "
        "(BACKPROP_MAX_DATASET_ROWS, BACKPROP_MAX_FEATURES) are the server's settings.",
    ),
]


class DatasetRead(Output):
    """A stored dataset. Inputs are stored as float32 where that holds every value exactly
    (integers, values read from float32 data) and as float64 otherwise, so they read back
    as given. `n_targets` is the output width the data trains by default: the targets'
    width, or for labelled data the number of classes (1 for two classes, one 0/1 unit)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0f8e3a6c2b9d4e1f8a7b6c5d4e3f2a1b",
                    "name": "pets",
                    "n_samples": 4,
                    "n_features": 2,
                    "n_targets": 1,
                    "task": "classification",
                    "classes": ["cat", "dog"],
                    "class_counts": [2, 2],
                    "feature_names": ["weight_kg", "height_cm"],
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
    task: Task = Field(description="`classification` for labelled data, else `regression`.")
    classes: list[bool | int | str] | None = Field(
        description="The distinct labels, sorted, of the type they were given in; null for "
        "regression."
    )
    class_counts: list[int] | None = Field(
        description="Rows per class, in the order of `classes`; null for regression."
    )
    feature_names: list[str] | None = Field(
        description="The inputs' column names (from a CSV header); null when none were given."
    )
    source: dict[str, Any]
    created_at: datetime


class SampleRead(Output):
    """One row of a dataset: its position and inputs, then for regression data its
    `targets` (and `label` null), for labelled data its `label` as given (and `targets`
    null)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"index": 0, "inputs": [1, 1], "targets": [1], "label": None},
                {"index": 0, "inputs": [4.1, 30], "targets": None, "label": "cat"},
            ]
        }
    )

    index: int
    inputs: list[float]
    targets: list[float] | None
    label: bool | int | str | None
