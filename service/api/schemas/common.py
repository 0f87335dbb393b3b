"""What every body shares: the strict `Input` and plain `Output` bases, `Page[X]`, and
the field types (integers, rows, names, choices from the core's tables)."""

from collections.abc import Iterable
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetCoreSchemaHandler
from pydantic_core import core_schema

from service.core.activations import HIDDEN, OUTPUT
from service.core.datasets import GENERATORS
from service.core.initializers import INIT_CHOICES
from service.core.losses import LOSSES
from service.core.optimizers import OPTIMIZERS
from service.core.schedules import SCHEDULES
from service.core.spec import (
    DTYPES,
    ENGINES,
    INPUT_SCALINGS,
    TARGET_SCALINGS,
    TASKS,
    UPDATE_RULES,
)

T = TypeVar("T")

# The largest value of the databases' INTEGER columns (epochs, versions): larger ones can
# match nothing, and PostgreSQL fails on a comparison with them.
MAX_STORED_INT = 2**31 - 1

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
# Ids are what `service.db.base.new_id` makes: 32 lowercase hex digits.
ID_PATTERN = r"^[0-9a-f]{32}$"
# Free text that is stored: no control characters (PostgreSQL refuses NUL in text).
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"


class OneOf:
    """Annotated metadata: the value must be one of a table's keys (an enum in the schema)."""

    def __init__(self, choices: Iterable[str]) -> None:
        self.choices = sorted(choices)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.literal_schema(self.choices)


HiddenActivation = Annotated[str, OneOf(HIDDEN)]
OutputActivation = Annotated[str, OneOf(OUTPUT)]
# The initializers and `auto`, which picks one per layer.
Initializer = Annotated[str, OneOf(INIT_CHOICES)]
Loss = Annotated[str, OneOf(LOSSES)]
OptimizerName = Annotated[str, OneOf(OPTIMIZERS)]
ScheduleName = Annotated[str, OneOf(SCHEDULES)]
UpdateRule = Annotated[str, OneOf(UPDATE_RULES)]
DType = Annotated[str, OneOf(DTYPES)]
Engine = Annotated[str, OneOf(ENGINES)]
GeneratorKind = Annotated[str, OneOf(GENERATORS)]
InputScaling = Annotated[str, OneOf(INPUT_SCALINGS)]
TargetScaling = Annotated[str, OneOf(TARGET_SCALINGS)]
Task = Annotated[str, OneOf(TASKS)]
# A class label as the client gave it; bool first, so `true` stays a boolean, not 1.
Label = Annotated[
    bool | int | Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)],
    Field(union_mode="left_to_right"),
]
Name = Annotated[str, Field(pattern=NAME_PATTERN, examples=["xor-net"])]
Id = Annotated[str, Field(pattern=ID_PATTERN, examples=["0f8e3a6c2b9d4e1f8a7b6c5d4e3f2a1b"])]


def _integral_float_to_int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# JSON Schema's integers include 1.0, which strict models (see `Input`) would refuse;
# booleans and strings stay refused. Bounds go before it, on the int itself
# (`Annotated[int, Field(ge=1), FROM_WHOLE_FLOAT]`): put after it, on a list's items or on
# a nullable integer, pydantic still checks them but writes them into the JSON Schema as
# `ge`/`le`, which JSON Schema does not know, instead of `minimum`/`maximum`.
FROM_WHOLE_FLOAT = BeforeValidator(_integral_float_to_int)
# An integer in a request body.
Integer = Annotated[int, FROM_WHOLE_FLOAT]
Row = Annotated[list[float], Field(min_length=1)]
Rows = Annotated[list[Row], Field(min_length=1)]


class Input(BaseModel):
    """Every request body: unknown fields, NaN/infinity and values of another JSON type
    than the schema's (`true` or `"1"` for a number) are rejected."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(Output, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )

    @classmethod
    def model_parametrized_name(cls, params: tuple[Any, ...]) -> str:
        """`Page[DatasetRead]` is titled `DatasetPage` (service.api.openapi files it under
        that name, not pydantic's `Page_DatasetRead_`), and so named in generated clients."""
        (item,) = params
        name: str = item.__name__
        return name.removesuffix("Read") + "Page"
