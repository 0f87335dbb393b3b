"""Path and query parameters that name a stored thing, with the shape its names have: a
malformed one never reaches a query (PostgreSQL refuses a NUL in text outright).

Ids are matched by the router itself (`{job_id:id}`): a path whose id cannot exist is no
route, so `GET /v1/datasets/csv` is 405 (the path is `POST`'s), not a lookup of a dataset
called "csv", and `/v1/jobs/not-an-id` is 404. Names are checked as parameters: 422.
"""

from typing import Annotated

from fastapi import Path, Query
from starlette.convertors import Convertor, register_url_convertor

from service.api.schemas import ID_PATTERN, NAME_PATTERN


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
