"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, delete, inspect, select

from service.core import Labels, NetworkSpec, Parameters, RunSpec, predict
from service.core.serialization import pack
from service.db import (
    Base,
    HistoryRow,
    JobRow,
    JobStatus,
    SnapshotRow,
    make_engine,
    make_session_factory,
    registry,
)
from service.db.blobs import array_to_npy, npy_to_array
from service.db.datasets import create_dataset
from service.db.jobs import create_job
from service.db.migrate import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    is_at_head,
    upgrade,
)
from service.db.models import VersionSource
from tests.helpers import running_service

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


# A job as revision 0002 stored it: no preprocessing (it trained on the data as given) and,
# in the oldest specs, no `init` either (it drew from N(0, 1)).
OLD_NETWORK = {"layers": [2, 3, 1], "hidden_activation": "tanh", "output_activation": "sigmoid"}
# Ids as the service makes them: 32 hex digits.
DATASET_ID, JOB_ID = "d" * 32, "b" * 32
OLD_SPEC = {
    "network": OLD_NETWORK,
    "training": {"loss": "binary_crossentropy", "epochs": 5, "learning_rate": 0.1},
}


def insert_0002_rows(url: str, flat: np.ndarray) -> str:
    """A dataset, a finished job and a registered model version, written through the
    0002 schema as reflected from the database; returns the job's id."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            tables = MetaData()
            tables.reflect(connection)
            now = datetime.now(UTC)
            connection.execute(
                tables.tables["datasets"].insert(),
                {
                    "id": DATASET_ID,
                    "name": "old",
                    "n_samples": 4,
                    "n_features": 2,
                    "n_targets": 1,
                    "inputs": array_to_npy(np.array([[1.0, 1], [-1, 1], [1, -1], [-1, -1]])),
                    "targets": array_to_npy(np.array([[1.0], [0], [0], [1]])),
                    "source": {"kind": "rows"},
                    "created_at": now,
                },
            )
            connection.execute(
                tables.tables["jobs"].insert(),
                {
                    "id": JOB_ID,
                    "dataset_id": DATASET_ID,
                    "model_name": "old",
                    "status": "succeeded",
                    "spec": OLD_SPEC,
                    "checkpoint_every": 5,
                    "epoch": 5,
                    "epochs_total": 5,
                    "attempts": 1,
                    "cancel_requested": False,
                    "model_version": 1,
                    "created_at": now,
                },
            )
            connection.execute(tables.tables["models"].insert(), {"name": "old", "created_at": now})
            connection.execute(
                tables.tables["model_versions"].insert(),
                {
                    "model_name": "old",
                    "version": 1,
                    "job_id": JOB_ID,
                    "epoch": 5,
                    # The model blob as it was made before preprocessing and classes.
                    "weights": pack("model", {"network": OLD_NETWORK}, {"flat": flat}),
                    "created_at": now,
                },
            )
    finally:
        engine.dispose()
    return JOB_ID


def test_an_old_model_predicts_exactly_as_before_after_upgrade(
    database_url: str, tmp_path: Path
) -> None:
    upgrade(database_url, "0002_workers")
    network = NetworkSpec.from_dict(OLD_NETWORK)
    flat = np.random.default_rng(7).normal(size=network.n_parameters)
    job_id = insert_0002_rows(database_url, flat)
    # Raw rows far from the unit scale: any scaling would change the outputs.
    inputs = np.random.default_rng(8).normal(scale=30.0, size=(16, 2)) + 5.0
    before = predict(network, Parameters(network.layers, flat), inputs)

    # `db upgrade` (run by running_service) takes the database to head.
    with (
        running_service(database_url, tmp_path / "serve.log", workers=1) as server,
        httpx2.Client(base_url=server.base_url, timeout=30) as client,
    ):
        predicted = client.post("/v1/models/old/predict", json={"inputs": inputs.tolist()})
        job = client.get(f"/v1/jobs/{job_id}").json()

    assert current_revision(database_url) == head_revision()
    assert predicted.status_code == 200, predicted.text
    assert np.array_equal(np.array(predicted.json()["outputs"]), before)
    assert job["spec"]["preprocessing"] == {"inputs": "none", "targets": "none"}
    assert job["spec"]["network"] == {**OLD_NETWORK, "init": "normal"}
    assert job["spec"]["training"] == OLD_SPEC["training"]


def test_0003_downgrade_takes_preprocessing_out_and_encodes_labels_again(
    database_url: str,
) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine).begin() as session:
            labels = Labels.from_values(["b", "a", "c", "a"])
            dataset = create_dataset(
                session, "abc", np.zeros((4, 2)), None, {"kind": "rows"}, labels=labels
            )
            spec = RunSpec.from_dict({"network": {"layers": [2, 3]}})
            job_id = create_job(session, dataset.id, spec, None, 10).id
        downgrade(database_url, "0002_workers")
        with engine.connect() as connection:
            tables = MetaData()
            tables.reflect(connection)
            targets = connection.scalar(select(tables.tables["datasets"].c.targets))
            stored = connection.scalar(select(tables.tables["jobs"].c.spec))
    finally:
        engine.dispose()

    assert "classes" not in {c.name for c in tables.tables["datasets"].columns}
    assert targets is not None and stored is not None
    assert np.array_equal(npy_to_array(targets), np.eye(3)[[1, 0, 2, 0]])
    assert "preprocessing" not in stored and stored["network"]["layers"] == [2, 3]
    assert job_id


def test_0004_round_trip_keeps_the_rows_and_drops_only_uploaded_versions(
    database_url: str,
) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    weights = pack("model", {"network": OLD_NETWORK}, {"flat": np.arange(13.0)})
    try:
        with make_session_factory(engine).begin() as session:
            dataset = create_dataset(session, "d", np.zeros((4, 2)), np.zeros((4, 1)), {})
            spec = RunSpec.from_dict({"network": {"layers": [2, 3, 1]}})
            job = create_job(session, dataset.id, spec, "m", 5, description="d", tags={"a": "b"})
            job.status = JobStatus.SUCCEEDED
            job_id = job.id
            session.add(HistoryRow(job_id=job_id, epoch=1, loss=0.5))
            session.add(SnapshotRow(job_id=job_id, epoch=1, weights=weights))
            trained = registry.register_version(session, "m", job_id, 1, weights)
            trained.tags = {"stage": "dev"}
            uploaded = registry.register_version(session, "m", job_id, 1, weights)
            uploaded.job_id, uploaded.epoch, uploaded.source = None, None, VersionSource.UPLOAD
            session.flush()
            registry.set_alias(session, "m", "production", 2)
            registry.set_alias(session, "m", "stable", 1)

        downgrade(database_url, "0003_labels_preprocessing")
        with engine.connect() as connection:
            tables = MetaData()
            tables.reflect(connection)
            versions = connection.execute(
                select(
                    tables.tables["model_versions"].c.version,
                    tables.tables["model_versions"].c.job_id,
                )
            ).all()
            aliases = connection.execute(select(tables.tables["model_aliases"].c.alias)).all()
        assert "tags" not in tables.tables["jobs"].columns
        assert "source" not in tables.tables["model_versions"].columns
        assert [tuple(v) for v in versions] == [(1, job_id)]
        assert [a for (a,) in aliases] == ["stable"]

        upgrade(database_url)
        assert current_revision(database_url) == head_revision()
        with make_session_factory(engine).begin() as session:
            job = session.get_one(JobRow, job_id)
            version = registry.get_version(session, "m", 1)
            assert (job.tags, job.description, job.status) == ({}, None, JobStatus.SUCCEEDED)
            assert (version.tags, version.source, version.epoch) == ({}, "job", 1)
            assert version.weights == weights
            assert registry.aliases_of(session, "m") == {"stable": 1}
            # The foreign keys came through the table rebuilds: deleting the job takes its
            # history and snapshots (cascade) and leaves the version (set null).
            session.execute(delete(JobRow).where(JobRow.id == job_id))
        with make_session_factory(engine).begin() as session:
            assert session.scalars(select(HistoryRow)).all() == []
            assert session.scalars(select(SnapshotRow)).all() == []
            assert registry.get_version(session, "m", 1).job_id is None
    finally:
        engine.dispose()
