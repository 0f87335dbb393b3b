"""Model registry queries: named models, numbered versions, movable aliases. No commits."""

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service.db.models import ModelAliasRow, ModelRow, ModelVersionRow, VersionSource
from service.db.pagination import decode_cursor, page_of
from service.db.tags import edit_metadata, tags_match
from service.errors import Conflict, NotFound


def register_version(
    session: Session,
    model_name: str,
    job_id: str | None,
    epoch: int | None,
    weights: bytes,
    *,
    source: VersionSource = VersionSource.JOB,
    description: str | None = None,
    metrics: dict[str, float | None] | None = None,
) -> ModelVersionRow:
    """Add the next version of `model_name` (creating the model on first use): a job's
    weights at `epoch`, or an uploaded model file's (`source=upload`, no job, no epoch);
    `metrics` are the history row of `epoch`, the epoch whose weights it holds. Numbers
    are never given twice, not even after a delete (`ModelRow.last_version`)."""
    # Locked while the next number is taken, so registrations of one model take turns.
    model = session.get(ModelRow, model_name, with_for_update=True, populate_existing=True)
    if model is None:
        model = ModelRow(name=model_name, last_version=0)
        session.add(model)
    model.last_version += 1
    session.flush()
    version = ModelVersionRow(
        model_name=model_name,
        version=model.last_version,
        job_id=job_id,
        epoch=epoch,
        weights=weights,
        source=source,
        description=description,
        metrics=metrics,
    )
    session.add(version)
    session.flush()
    return version


def list_models(
    session: Session, limit: int, cursor: str | None, tags: Sequence[tuple[str, str]] = ()
) -> tuple[list[ModelRow], str | None]:
    """By name, optionally only those whose tags hold every `(key, value)` of `tags`."""
    query = select(ModelRow).where(tags_match(ModelRow.tags, tags)).order_by(ModelRow.name)
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
    session: Session,
    name: str,
    limit: int,
    cursor: str | None,
    tags: Sequence[tuple[str, str]] = (),
) -> tuple[list[ModelVersionRow], str | None]:
    """Newest first, optionally only those whose tags hold every `(key, value)` of `tags`."""
    get_model(session, name)
    query = (
        select(ModelVersionRow)
        .where(ModelVersionRow.model_name == name, tags_match(ModelVersionRow.tags, tags))
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


def version_job_id(session: Session, name: str, version: int) -> str | None:
    """The job that trained a version: None for an uploaded one, or once that job is deleted."""
    return session.scalar(
        select(ModelVersionRow.job_id).where(
            ModelVersionRow.model_name == name, ModelVersionRow.version == version
        )
    )


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
    # KEY SHARE on PostgreSQL: a delete of the version waits for this alias to commit and
    # then sees it (409), or, deleting first, makes this lookup find nothing (404).
    locked = select(ModelVersionRow.version).where(
        ModelVersionRow.model_name == name, ModelVersionRow.version == version
    )
    if session.scalar(locked.with_for_update(key_share=True)) is None:
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


def version_numbers(session: Session, name: str) -> list[int]:
    """Every version number of `name`, oldest first (the Open Inference Protocol's model
    metadata lists them)."""
    get_model(session, name)
    query = select(ModelVersionRow.version).where(ModelVersionRow.model_name == name)
    return list(session.scalars(query.order_by(ModelVersionRow.version)))


def edit_model(session: Session, name: str, changes: Mapping[str, Any]) -> ModelRow:
    """Change a model's description and tags (see `tags.edit_metadata`); the row is
    locked first on PostgreSQL, so concurrent edits of the tags merge one after another."""
    model = session.get(ModelRow, name, with_for_update=True)
    if model is None:
        raise NotFound(f"model {name} does not exist")
    edit_metadata(model, changes)
    session.flush()
    return model


def edit_version(
    session: Session, name: str, version: int, changes: Mapping[str, Any]
) -> ModelVersionRow:
    """Change a version's description and tags (see `tags.edit_metadata`); its weights
    never change."""
    found = session.get(ModelVersionRow, (name, version), with_for_update=True)
    if found is None:
        get_model(session, name)
        raise NotFound(f"model {name} has no version {version}")
    edit_metadata(found, changes)
    session.flush()
    return found


def delete_version(session: Session, name: str, version: int) -> None:
    """Delete one version, refused while an alias points at it. The row is locked before
    the aliases are read (FOR UPDATE on PostgreSQL; SQLite's write lock is held already),
    so an alias set at the same moment is either seen here or finds no version.

    Its number is not given again: the next version registered takes the one after the
    highest the model ever had.
    """
    locked = select(ModelVersionRow.version).where(
        ModelVersionRow.model_name == name, ModelVersionRow.version == version
    )
    if session.scalar(locked.with_for_update()) is None:
        get_version(session, name, version)
    aliases = sorted(
        session.scalars(
            select(ModelAliasRow.alias).where(
                ModelAliasRow.model_name == name, ModelAliasRow.version == version
            )
        )
    )
    if aliases:
        which = "that alias" if len(aliases) == 1 else "those aliases"
        raise Conflict(
            f"model {name} version {version} is aliased as {', '.join(aliases)}; "
            f"move or delete {which} first"
        )
    session.execute(
        delete(ModelVersionRow).where(
            ModelVersionRow.model_name == name, ModelVersionRow.version == version
        )
    )


def delete_model(session: Session, name: str, force: bool) -> None:
    """Delete a model that has no versions; with `force`, its versions and aliases too.
    The model's row is locked first, so a worker registering a version meanwhile either
    commits before (and its version is counted, or deleted with `force`) or after (and
    creates the model anew)."""
    locked = select(ModelRow.name).where(ModelRow.name == name).with_for_update()
    if session.scalar(locked) is None:
        raise NotFound(f"model {name} does not exist")
    versions = session.scalar(
        select(func.count()).select_from(ModelVersionRow).where(ModelVersionRow.model_name == name)
    )
    if versions and not force:
        raise Conflict(
            f"model {name} has {versions} version{'s' if versions > 1 else ''}; delete them "
            "first, or pass force=true to delete the model with its versions and aliases"
        )
    session.execute(delete(ModelAliasRow).where(ModelAliasRow.model_name == name))
    session.execute(delete(ModelVersionRow).where(ModelVersionRow.model_name == name))
    session.execute(delete(ModelRow).where(ModelRow.name == name))
