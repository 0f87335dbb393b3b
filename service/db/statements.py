"""Statement shapes that several query modules write the same way."""

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from service.db.base import Base
from service.db.models import JobRow, WorkerRow


def update_row(
    session: Session,
    row_class: type[JobRow] | type[WorkerRow],
    row_id: str,
    *conditions: Any,
    **values: Any,
) -> bool:
    """UPDATE the row `row_id` where all `conditions` hold; returns whether it matched.

    Conditional updates are how the jobs change state without locks held across
    transactions: the caller learns from the match whether the row was as it expected.
    """
    statement = update(row_class).where(row_class.id == row_id, *conditions).values(**values)
    # The loaded objects are not updated: callers re-read what they need.
    result = session.execute(statement.execution_options(synchronize_session=False))
    return bool(cast(CursorResult[Any], result).rowcount)


def upsert(
    session: Session,
    row_class: type[Base],
    key: Sequence[str],
    replace: Sequence[str],
    *,
    keep_when_null: Sequence[str] = (),
    **values: Any,
) -> Insert:
    """INSERT `values` (or, without them, rows given to `execute`); a row whose `key`
    columns match an existing one replaces that one's `replace` columns instead, and its
    `keep_when_null` columns too, except where the new row has NULL there.

    Both databases have ON CONFLICT DO UPDATE, each in its own dialect's statement.
    """
    on_postgresql = session.get_bind().dialect.name == "postgresql"
    statement = (postgresql.insert if on_postgresql else sqlite.insert)(row_class)
    if values:
        statement = statement.values(**values)
    replaced: dict[str, ColumnElement[Any]] = {name: statement.excluded[name] for name in replace}
    for name in keep_when_null:
        replaced[name] = func.coalesce(statement.excluded[name], getattr(row_class, name))
    return statement.on_conflict_do_update(index_elements=list(key), set_=replaced)
