"""Models that travel: metadata on jobs, models and versions; uploaded versions; warm
starts and retries; the epoch a job's final weights come from.

Jobs gain `description`, `tags`, `initial_weights` (a copy of the model a warm start
begins from, so the job does not depend on that model staying registered), `retry_of`
(the job a retry copied, not a foreign key: that job may be deleted) and `weights_epoch`
(the epoch whose weights the job's final model holds: the best epoch after early
stopping restored it). Models gain `tags` and `last_version` (the highest version
number they ever had, so a deleted version's number is never given again); versions gain
`description`, `tags`, `metrics` (of the epoch whose weights they hold) and `source`
(`job` or `upload`), and an uploaded version has no epoch.

Revision ID: 0004_models_travel
Revises: 0003_labels_preprocessing
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_models_travel"
down_revision: str | None = "0003_labels_preprocessing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMPTY_TAGS = sa.text("'{}'")


def upgrade() -> None:
    """Add the columns; an uploaded version's epoch may be null."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default=EMPTY_TAGS))
        batch.add_column(sa.Column("initial_weights", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("retry_of", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("weights_epoch", sa.Integer(), nullable=True))
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default=EMPTY_TAGS))
        batch.add_column(
            sa.Column("last_version", sa.Integer(), nullable=False, server_default="0")
        )
    models = sa.table("models", sa.column("name", sa.String), sa.column("last_version", sa.Integer))
    versions = sa.table(
        "model_versions", sa.column("model_name", sa.String), sa.column("version", sa.Integer)
    )
    highest = (
        sa.select(sa.func.coalesce(sa.func.max(versions.c.version), 0))
        .where(versions.c.model_name == models.c.name)
        .scalar_subquery()
    )
    op.get_bind().execute(models.update().values(last_version=highest))
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default=EMPTY_TAGS))
        batch.add_column(sa.Column("metrics", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("source", sa.String(length=16), nullable=False, server_default="job")
        )
        batch.alter_column("epoch", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    """Drop the columns. Uploaded versions have no epoch and no job: they go too, with
    the aliases that point at them."""
    versions = sa.table(
        "model_versions",
        sa.column("model_name", sa.String),
        sa.column("version", sa.Integer),
        sa.column("source", sa.String),
    )
    aliases = sa.table(
        "model_aliases", sa.column("model_name", sa.String), sa.column("version", sa.Integer)
    )
    uploaded = sa.select(versions.c.model_name, versions.c.version).where(
        versions.c.source == "upload"
    )
    connection = op.get_bind()
    connection.execute(
        aliases.delete().where(sa.tuple_(aliases.c.model_name, aliases.c.version).in_(uploaded))
    )
    connection.execute(versions.delete().where(versions.c.source == "upload"))
    with op.batch_alter_table("model_versions") as batch:
        batch.alter_column("epoch", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("source")
        batch.drop_column("metrics")
        batch.drop_column("tags")
        batch.drop_column("description")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("last_version")
        batch.drop_column("tags")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("weights_epoch")
        batch.drop_column("retry_of")
        batch.drop_column("initial_weights")
        batch.drop_column("tags")
        batch.drop_column("description")
