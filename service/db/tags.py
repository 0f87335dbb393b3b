"""Tags and descriptions on jobs, models and model versions: what a tag may be, how a
patch edits them, and the SQL that filters a list by them. No commits.

A tag key is also a JSON path step in the filters' SQL, so its charset is the database's
rule: no quotes, no `:` (the filter's separator), nothing a path would need to escape.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, true
from sqlalchemy.orm import InstrumentedAttribute

from service.errors import Invalid

MAX_TAGS = 50
MAX_TAG_KEY_LENGTH = 64
MAX_TAG_VALUE_LENGTH = 256
TAG_KEY_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._/-]{{0,{MAX_TAG_KEY_LENGTH - 1}}}$"
# Free text of one line, as every stored name: no control characters.
TAG_VALUE_PATTERN = rf"^[^\x00-\x1f\x7f]{{0,{MAX_TAG_VALUE_LENGTH}}}$"


class Described(Protocol):
    """A row with a description and tags: a job, a model or a model version."""

    description: str | None
    tags: dict[str, str]


def edit_metadata(row: Described, changes: Mapping[str, Any]) -> None:
    """Apply a patch to `row`: `description` replaces (null clears it); `tags` is a JSON
    merge patch (RFC 7386): a key set to a string sets it, a key set to null removes it,
    keys left out stay, and `"tags": null` removes them all. Keys absent from `changes`
    are left alone."""
    if "description" in changes:
        row.description = changes["description"]
    if "tags" in changes:
        patch: Mapping[str, str | None] | None = changes["tags"]
        merged = {} if patch is None else dict(row.tags or {})
        for key, value in (patch or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        if len(merged) > MAX_TAGS:
            raise Invalid(
                f"the patch would leave {len(merged)} tags; at most {MAX_TAGS} are kept",
                [{"loc": ["body", "tags"], "msg": f"at most {MAX_TAGS} tags after the merge"}],
            )
        # A new dict: the JSON column sees a change only when it is assigned.
        row.tags = merged


def tags_match(
    column: InstrumentedAttribute[dict[str, str]], wanted: Sequence[tuple[str, str]]
) -> ColumnElement[bool]:
    """Rows whose tags hold every `(key, value)` pair: a JSON element compared as text,
    the same expression on SQLite (`json_extract`) and PostgreSQL (`->>`)."""
    if not wanted:
        return true()
    return and_(*(column[key].as_string() == value for key, value in wanted))
