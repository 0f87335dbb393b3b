"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from service.db import Base, make_engine
from service.db.migrate import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    is_at_head,
    upgrade,
)

APP_TABLES = {
    "datasets",
    "jobs",
    "history",
    "snapshots",
    "models",
    "model_versions",
    "model_aliases",
    "workers",
}


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def describe_schema(connection: Connection) -> dict[str, Any]:
    """Everything about the app's tables that a migration could get wrong, by name."""
    inspector = inspect(connection)
    schema: dict[str, Any] = {}
    for table in sorted(APP_TABLES):
        schema[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table),
            "foreign_keys": sorted(
                (
                    fk["name"],
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    (fk.get("options") or {}).get("ondelete"),
                )
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), ix["unique"])
                for ix in inspector.get_indexes(table)
            ),
            "checks": sorted(ck["name"] for ck in inspector.get_check_constraints(table)),
            "uniques": sorted(uq["name"] for uq in inspector.get_unique_constraints(table)),
        }
    return schema


def test_upgrade_to_head_then_downgrade_to_base_leaves_no_tables(database_url: str) -> None:
    assert table_names(database_url) == set()

    upgrade(database_url)
    assert table_names(database_url) == APP_TABLES | {"alembic_version"}

    downgrade(database_url, "base")
    # Alembic keeps its (now empty) bookkeeping table; nothing of ours is left.
    assert table_names(database_url) == {"alembic_version"}
    assert current_revision(database_url) is None


def test_0002_adds_the_workers_table_and_its_downgrade_drops_only_that(database_url: str) -> None:
    upgrade(database_url, "0001_initial")
    assert table_names(database_url) == APP_TABLES - {"workers"} | {"alembic_version"}

    upgrade(database_url, "0002_workers")
    assert current_revision(database_url) == "0002_workers"
    assert table_names(database_url) == APP_TABLES | {"alembic_version"}

    downgrade(database_url, "0001_initial")
    assert current_revision(database_url) == "0001_initial"
    assert table_names(database_url) == APP_TABLES - {"workers"} | {"alembic_version"}

    upgrade(database_url)
    assert table_names(database_url) == APP_TABLES | {"alembic_version"}


def test_revision_helpers_follow_the_database(database_url: str) -> None:
    assert current_revision(database_url) is None
    assert not is_at_head(database_url)

    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    assert is_at_head(database_url)


def test_migrated_schema_has_no_difference_from_models(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_migrated_schema_equals_create_all_including_constraint_names(database_url: str) -> None:
    # compare_metadata ignores constraint names and CHECKs; compare the reflected
    # schemas themselves, built once by the migrations and once from the models.
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            migrated = describe_schema(connection)
        downgrade(database_url, "base")
        with engine.begin() as connection:
            Base.metadata.create_all(connection)
        with engine.begin() as connection:
            created = describe_schema(connection)
            Base.metadata.drop_all(connection)
    finally:
        engine.dispose()
    assert migrated == created


def test_migration_scripts_have_exactly_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads == [head_revision()]
