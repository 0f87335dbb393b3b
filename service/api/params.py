"""Path and query parameters that name a stored thing, with the shape its names have: a
malformed one never reaches a query (PostgreSQL refuses a NUL in text outright).

Ids are matched by the router itself (`{job_id:id}`): a path whose id cannot exist is no
route, so `GET /v1/datasets/csv` is 405 (the path is `POST`'s), not a lookup of a dataset
called "csv", and `/v1/jobs/not-an-id` is 404. Names are checked as parameters: 422.
"""

import re
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, WithJsonSchema
from starlette.convertors import Convertor, register_url_convertor

from service.api.schemas import ID_PATTERN, NAME_PATTERN
from service.db.tags import (
    MAX_TAG_KEY_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    TAG_KEY_PATTERN,
    TAG_VALUE_PATTERN,
)


class IdConvertor(Convertor[str]):
    """`{name:id}` in a route path: what `service.db.base.new_id` makes."""

    regex = ID_PATTERN.removeprefix("^").removesuffix("$")

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("id", IdConvertor())

JobId = Annotated[str, Path(pattern=ID_PATTERN, description="A job's `id`.")]
DatasetId = Annotated[str, Path(pattern=ID_PATTERN, description="A dataset's `id`.")]
ModelName = Annotated[str, Path(pattern=NAME_PATTERN, description="e.g. `xor-net`")]
AliasName = Annotated[str, Path(pattern=NAME_PATTERN, description="e.g. `production`")]
ModelNameFilter = Annotated[
    str | None, Query(pattern=NAME_PATTERN, description="Only jobs for this model.")
]

MAX_TAG_FILTERS = 10
TAG_FILTER_PATTERN = f"{TAG_KEY_PATTERN.removesuffix('$')}:{TAG_VALUE_PATTERN.removeprefix('^')}"


def _tag_filter(value: str) -> str:
    if re.fullmatch(TAG_FILTER_PATTERN, value) is None:
        raise ValueError(
            "a tag filter is key:value, the key of letters, digits and ._/- "
            f"(at most {MAX_TAG_KEY_LENGTH}), the value of up to {MAX_TAG_VALUE_LENGTH} "
            "characters on one line"
        )
    return value


# Checked by a function for a message a person can read; the schema shows the pattern.
TagFilterItem = Annotated[
    str,
    AfterValidator(_tag_filter),
    WithJsonSchema({"type": "string", "pattern": TAG_FILTER_PATTERN}),
]
TagFilter = Annotated[
    list[TagFilterItem] | None,
    Query(
        max_length=MAX_TAG_FILTERS,
        description="`key:value`: only items with this tag. Repeat it to ask for several "
        f"tags (all must match), up to {MAX_TAG_FILTERS}.",
        examples=[["stage:production"]],
    ),
]


def tag_pairs(filters: list[str] | None) -> list[tuple[str, str]]:
    """`["stage:production"]` -> `[("stage", "production")]`: a key has no `:`, so the
    first one separates it from the value."""
    return [(key, value) for key, _, value in (item.partition(":") for item in filters or [])]
