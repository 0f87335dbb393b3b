"""Persistence: SQLAlchemy models, engine and session factory, Alembic migration helpers."""

from service.db.base import Base, new_id, utc_now
from service.db.engine import make_engine, make_session_factory
from service.db.failures import is_unavailable
from service.db.models import (
    DatasetRow,
    HistoryRow,
    JobRow,
    JobStatus,
    ModelAliasRow,
    ModelRow,
    ModelVersionRow,
    SnapshotRow,
    WorkerRow,
)

__all__ = [
    "Base",
    "DatasetRow",
    "HistoryRow",
    "JobRow",
    "JobStatus",
    "ModelAliasRow",
    "ModelRow",
    "ModelVersionRow",
    "SnapshotRow",
    "WorkerRow",
    "is_unavailable",
    "make_engine",
    "make_session_factory",
    "new_id",
    "utc_now",
]
