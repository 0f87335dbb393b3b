"""Run and inspect Alembic migrations for a database URL."""

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from service.db.engine import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

# Key under which env.py finds the URL; set programmatically so a URL containing `%`
# needs no escaping for ConfigParser.
URL_ATTRIBUTE = "database_url"


def alembic_config(url: str | None = None) -> Config:
    """Return an Alembic config for the repository's `migrations/` and, if given, `url`."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise RuntimeError(
            f"Alembic migrations not found at {MIGRATIONS_DIR}; the service must run from a "
            "source checkout (or image) that contains the top-level migrations/ folder"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.attributes[URL_ATTRIBUTE] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` forward to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` back to `revision` ("base" empties it)."""
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """Return the revision the database at `url` is at, or None if it was never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return revision_on(connection)
    finally:
        engine.dispose()


def revision_on(connection: Connection) -> str | None:
    """The revision of the database behind an open connection."""
    return MigrationContext.configure(connection).get_current_revision()


def reachable_revision(engine: Engine) -> str | None:
    """The revision of the database behind `engine`; raises if it cannot be reached."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        return revision_on(connection)


@cache
def head_revision() -> str:
    """Return the newest revision of the migration scripts (read once per process)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts in {MIGRATIONS_DIR / 'versions'}")
    return head


def is_at_head(url: str) -> bool:
    """Tell whether the database at `url` is fully migrated."""
    return current_revision(url) == head_revision()
