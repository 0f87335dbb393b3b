"""The tables: datasets, training jobs with their history and snapshots, the model registry,
and the workers that are alive."""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Double,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UTCDateTime, new_id, utc_now

ID_LENGTH = 32
NAME_LENGTH = 200
EMPTY_TAGS = text("'{}'")


class JobStatus(enum.StrEnum):
    """Lifecycle of a training job."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A VARCHAR with a CHECK instead of a native PostgreSQL enum: the same on both databases,
# and adding a state later is a constraint change, not an ALTER TYPE.
job_status_type = Enum(
    JobStatus,
    name="status",
    native_enum=False,
    create_constraint=True,
    length=16,
    values_callable=lambda statuses: [status.value for status in statuses],
)


class DatasetRow(Base):
    """Training data; `inputs` are `.npy` bytes `(n_samples, n_features)`, float32 where that
    holds every value exactly, else float64. Regression data keeps float64 `targets`
    `(n_samples, n_targets)` and null `classes`; labelled data keeps each row's class index
    into `classes` (sorted, as given) in `targets` `(n_samples,)`."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    n_samples: Mapped[int] = mapped_column(Integer)
    n_features: Mapped[int] = mapped_column(Integer)
    n_targets: Mapped[int] = mapped_column(Integer)
    inputs: Mapped[bytes] = mapped_column(LargeBinary)
    targets: Mapped[bytes] = mapped_column(LargeBinary)
    source: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    # Columns added by migration 0003 come last, where ALTER TABLE puts them.
    # SQL NULL, not JSON null, for None: "no classes" is then one thing in both databases.
    classes: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    # Rows per class, in `classes` order: kept so a read need not load the targets.
    class_counts: Mapped[list[int] | None] = mapped_column(JSON(none_as_null=True))
    feature_names: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))

    @property
    def task(self) -> str:
        """`classification` for labelled data, `regression` for target values."""
        return "regression" if self.classes is None else "classification"


class JobRow(Base):
    """One training run, claimed and advanced by a worker."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created_at", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT"), index=True
    )
    model_name: Mapped[str | None] = mapped_column(String(NAME_LENGTH), index=True)
    status: Mapped[JobStatus] = mapped_column(job_status_type, default=JobStatus.QUEUED)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    checkpoint_every: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    epochs_total: Mapped[int] = mapped_column(Integer)
    loss: Mapped[float | None] = mapped_column(Double)
    val_loss: Mapped[float | None] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(Text)
    stop_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    run_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    model_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Columns added by migration 0004.
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default=EMPTY_TAGS)
    # A copy of the model blob a warm start begins from: the job does not depend on that
    # model version staying registered.
    initial_weights: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The job a retry copied. Not a foreign key: that job may be deleted.
    retry_of: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    # The epoch whose weights the final model holds (the best epoch after early stopping).
    weights_epoch: Mapped[int | None] = mapped_column(Integer)


class HistoryRow(Base):
    """Metrics of one finished epoch of a job."""

    __tablename__ = "history"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Nullable because a diverged epoch has no finite loss (SQLite stores NaN as NULL).
    loss: Mapped[float | None] = mapped_column(Double)
    val_loss: Mapped[float | None] = mapped_column(Double)
    rmse: Mapped[float | None] = mapped_column(Double)
    accuracy: Mapped[float | None] = mapped_column(Double)
    val_accuracy: Mapped[float | None] = mapped_column(Double)
    learning_rate: Mapped[float | None] = mapped_column(Double)
    val_precision: Mapped[float | None] = mapped_column(Double)
    val_recall: Mapped[float | None] = mapped_column(Double)
    val_f1: Mapped[float | None] = mapped_column(Double)
    mae: Mapped[float | None] = mapped_column(Double)
    r2: Mapped[float | None] = mapped_column(Double)
    val_mae: Mapped[float | None] = mapped_column(Double)
    val_r2: Mapped[float | None] = mapped_column(Double)


class SnapshotRow(Base):
    """Weights of a job after one epoch, with the checkpoint to resume from there."""

    __tablename__ = "snapshots"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    weights: Mapped[bytes] = mapped_column(LargeBinary)
    checkpoint: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class ModelRow(Base):
    """A named model in the registry; its versions hold the weights."""

    __tablename__ = "models"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default=EMPTY_TAGS)
    # The highest version number the model ever had: a deleted version's number is never
    # given again, so (name, version) always names the same weights (clients, caches and
    # downloaded files rely on it).
    last_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class VersionSource(enum.StrEnum):
    """Where a model version's weights came from."""

    JOB = "job"
    UPLOAD = "upload"


class ModelVersionRow(Base):
    """One registered version of a model: the weights of a job at one epoch, or of an
    uploaded model file (no job, no epoch)."""

    __tablename__ = "model_versions"

    model_name: Mapped[str] = mapped_column(
        ForeignKey("models.name", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The version keeps its own weights, so it outlives the job it came from.
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    epoch: Mapped[int | None] = mapped_column(Integer)
    weights: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    # Columns added by migration 0004.
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default=EMPTY_TAGS)
    # The history row of the epoch whose weights the version holds (loss, val_loss and
    # the metrics); None for an uploaded model.
    metrics: Mapped[dict[str, float | None] | None] = mapped_column(JSON(none_as_null=True))
    source: Mapped[str] = mapped_column(String(16), default=VersionSource.JOB, server_default="job")


class ModelAliasRow(Base):
    """A movable name (e.g. "production") for one version of a model."""

    __tablename__ = "model_aliases"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_name", "version"],
            ["model_versions.model_name", "model_versions.version"],
            ondelete="CASCADE",
        ),
    )

    model_name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    alias: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class WorkerRow(Base):
    """A worker process that is alive, busy or idle: it refreshes `heartbeat_at` while it
    runs and deletes its row when it stops; a reap deletes the rows of dead ones."""

    __tablename__ = "workers"

    # The worker's name, as in `JobRow.claimed_by`: host, process id and a random suffix.
    id: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(NAME_LENGTH))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Not a foreign key: the row only reports, and must never make a job's write fail.
    job_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
