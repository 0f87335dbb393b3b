"""Model registry queries: named models, numbered versions, movable aliases. No commits."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import ModelAliasRow, ModelRow, ModelVersionRow
from service.db.pagination import decode_cursor, page_of
from service.errors import NotFound


def register_version(
    session: Session,
    model_name: str,
    job_id: str,
    epoch: int,
    weights: bytes,
    *,
    metrics: dict[str, float | None] | None = None,
) -> ModelVersionRow:
    """Add the next version of `model_name` (creating the model on first use); `metrics`
    are the history row of `epoch`, the epoch whose weights it holds."""
    if session.get(ModelRow, model_name) is None:
        session.add(ModelRow(name=model_name))
        session.flush()
    latest = session.scalar(
        select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_name == model_name)
    )
    version = ModelVersionRow(
        model_name=model_name,
        version=(latest or 0) + 1,
        job_id=job_id,
        epoch=epoch,
        weights=weights,
        metrics=metrics,
    )
    session.add(version)
    session.flush()
    return version


def list_models(
    session: Session, limit: int, cursor: str | None
) -> tuple[list[ModelRow], str | None]:
    """By name."""
    query = select(ModelRow).order_by(ModelRow.name)
    if cursor is not None:
        (after,) = decode_cursor(cursor, (str,))
        query = query.where(ModelRow.name > after)
    return page_of(list(session.scalars(query.limit(limit + 1))), limit, lambda m: [m.name])


def get_model(session: Session, name: str) -> ModelRow:
    model = session.get(ModelRow, name)
    if model is None:
        raise NotFound(f"model {name} does not exist")
    return model


def latest_version(session: Session, name: str) -> int | None:
    return session.scalar(
        select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_name == name)
    )


def aliases_of(session: Session, name: str) -> dict[str, int]:
    rows = session.scalars(select(ModelAliasRow).where(ModelAliasRow.model_name == name))
    return {row.alias: row.version for row in rows}


def list_versions(
    session: Session, name: str, limit: int, cursor: str | None
) -> tuple[list[ModelVersionRow], str | None]:
    """Newest first."""
    get_model(session, name)
    query = (
        select(ModelVersionRow)
        .where(ModelVersionRow.model_name == name)
        .order_by(ModelVersionRow.version.desc())
    )
    if cursor is not None:
        (before,) = decode_cursor(cursor, (int,))
        query = query.where(ModelVersionRow.version < before)
    rows = list(session.scalars(query.limit(limit + 1)))
    return page_of(rows, limit, lambda v: [v.version])


def get_version(session: Session, name: str, version: int) -> ModelVersionRow:
    found = session.get(ModelVersionRow, (name, version))
    if found is None:
        get_model(session, name)
        raise NotFound(f"model {name} has no version {version}")
    return found


def resolve_version(session: Session, name: str, version: int | None, alias: str | None) -> int:
    """The version number that `version`, `alias` or (neither) the latest names."""
    if version is not None:
        return get_version(session, name, version).version
    if alias is not None:
        row = session.get(ModelAliasRow, (name, alias))
        if row is None:
            get_model(session, name)
            raise NotFound(f"model {name} has no alias {alias}")
        return row.version
    latest = latest_version(session, name)
    if latest is None:
        get_model(session, name)
        raise NotFound(f"model {name} has no versions yet")
    return latest


def set_alias(session: Session, name: str, alias: str, version: int) -> ModelAliasRow:
    get_version(session, name, version)
    row = session.get(ModelAliasRow, (name, alias))
    if row is None:
        row = ModelAliasRow(model_name=name, alias=alias, version=version)
        session.add(row)
    else:
        row.version = version
    session.flush()
    return row


def delete_alias(session: Session, name: str, alias: str) -> None:
    row = session.get(ModelAliasRow, (name, alias))
    if row is None:
        get_model(session, name)
        raise NotFound(f"model {name} has no alias {alias}")
    session.delete(row)
    session.flush()
