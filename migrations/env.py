"""Alembic environment: which database to migrate and against which metadata."""

from logging.config import fileConfig
from typing import Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from service.config import get_settings
from service.db import Base, make_engine
from service.db.base import UTCDateTime
from service.db.migrate import URL_ATTRIBUTE

config = context.config

# Only the command line has an ini file; when the service migrates, it keeps its logging.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    """Return `-x url=...`, else the URL set by service.db.migrate, else the settings."""
    from_command_line = context.get_x_argument(as_dictionary=True).get("url")
    from_caller = config.attributes.get(URL_ATTRIBUTE)
    return str(from_command_line or from_caller or get_settings().database_url)


def render_item(kind: str, item: object, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write the service's column types as plain SQLAlchemy ones, so revisions stand alone."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def configure(connection: Connection) -> None:
    """Point Alembic at the connection and the models' metadata."""
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # make_engine emits BEGIN itself, so SQLite DDL is transactional too: a failed
        # upgrade leaves no half-built schema.
        transactional_ddl=True,
        compare_type=True,
        render_item=render_item,
    )


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (`alembic upgrade head --sql`)."""
    context.configure(
        url=database_url(),
        target_metadata=Base.metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations in one transaction (SQLite and PostgreSQL both have transactional DDL)."""
    engine = make_engine(database_url(), sqlite_foreign_keys=False)
    try:
        with engine.connect() as connection:
            configure(connection)
            with context.begin_transaction():
                revisions_before = context.get_context().get_current_heads()
                context.run_migrations()
                changed = context.get_context().get_current_heads() != revisions_before
                if changed and connection.dialect.name == "sqlite":
                    # Foreign keys were off during the table rebuilds; refuse to commit
                    # a schema change that left dangling references behind.
                    dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if dangling:
                        raise RuntimeError(f"migration left broken foreign keys: {dangling}")
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
