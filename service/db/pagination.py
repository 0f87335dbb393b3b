"""Keyset pagination with opaque cursors: the last item's sort key as base64 JSON."""

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

from service.db.models import DatasetRow, JobRow
from service.errors import Invalid

T = TypeVar("T")
# The tables listed newest first: each has a creation time and a unique id to break ties.
NewestFirst = TypeVar("NewestFirst", DatasetRow, JobRow)


def _bad_cursor() -> Invalid:
    return Invalid(
        "cursor is not one this service issued",
        [{"loc": ["query", "cursor"], "msg": "not a valid cursor"}],
    )


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, types: Sequence[type]) -> list[Any]:
    """The key inside `cursor`, checked against `types` (datetime keys are ISO strings)."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(key, list) or len(key) != len(types):
            raise ValueError
        return [
            datetime.fromisoformat(value) if kind is datetime else _exact(value, kind)
            for value, kind in zip(key, types, strict=True)
        ]
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise _bad_cursor() from None


def _exact(value: Any, kind: type) -> Any:
    # A NUL is in no key this service issued, and PostgreSQL refuses it in a comparison.
    if type(value) is not kind or (isinstance(value, str) and "\x00" in value):
        raise TypeError
    return value


def page_of(rows: list[T], limit: int, key: Callable[[T], list[Any]]) -> tuple[list[T], str | None]:
    """Cut `rows` (fetched with `limit + 1`) to a page and the cursor of the next one."""
    if len(rows) > limit:
        last = key(rows[limit - 1])
        return rows[:limit], encode_cursor(
            [v.isoformat() if isinstance(v, datetime) else v for v in last]
        )
    return rows, None


def newest_first_page(
    session: Session,
    table: type[NewestFirst],
    query: Select[NewestFirst],
    limit: int,
    cursor: str | None,
) -> tuple[list[NewestFirst], str | None]:
    """A page of `query`'s rows of `table`, newest first (ties by id), and the next cursor."""
    query = query.order_by(table.created_at.desc(), table.id.desc())
    if cursor is not None:
        created_at, row_id = decode_cursor(cursor, (datetime, str))
        query = query.where(
            (table.created_at < created_at)
            | ((table.created_at == created_at) & (table.id < row_id))
        )
    rows = list(session.scalars(query.limit(limit + 1)))
    return page_of(rows, limit, lambda row: [row.created_at, row.id])
