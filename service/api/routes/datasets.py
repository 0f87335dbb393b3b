"""Datasets: JSON rows, generated, or uploaded as CSV."""

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, Response, UploadFile

from service.api.deps import ReadSessionDep, SessionDep, SettingsDep
from service.api.openapi import link
from service.api.pagination import NEXT_CURSOR, Cursor, Limit
from service.api.params import DatasetId
from service.api.problems import problem_responses
from service.api.schemas import TEXT_PATTERN, DatasetCreate, DatasetRead, Page, SampleRead
from service.config import Settings
from service.core.datasets import generate_data
from service.core.errors import SpecError
from service.core.labels import Labels
from service.db import datasets as queries
from service.errors import Invalid
from service.tabular import TooManyRows, read_csv

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

# Links: where a response's ids lead, for the docs and the stateful fuzz test.
CREATED = {"dataset_id": "$response.body#/id"}
CREATED_LINKS = {
    "GetDataset": link("GET", "/v1/datasets/{dataset_id}", CREATED),
    "GetDatasetRows": link("GET", "/v1/datasets/{dataset_id}/rows", CREATED),
    "DeleteDataset": link("DELETE", "/v1/datasets/{dataset_id}", CREATED),
    "SubmitJob": link("POST", "/v1/jobs", body=CREATED),
}
FIRST = {"dataset_id": "$response.body#/items/0/id"}
LIST_LINKS = {
    "NextPage": link("GET", "/v1/datasets", {"cursor": NEXT_CURSOR}),
    "GetDataset": link("GET", "/v1/datasets/{dataset_id}", FIRST),
    "GetDatasetRows": link("GET", "/v1/datasets/{dataset_id}/rows", FIRST),
}
ROWS_LINKS = {
    "NextPage": link(
        "GET",
        "/v1/datasets/{dataset_id}/rows",
        {"dataset_id": "$request.path.dataset_id", "cursor": NEXT_CURSOR},
    ),
}


def _check_limits(settings: Settings, n_rows: int, n_features: int, n_targets: int) -> None:
    if n_rows > settings.max_dataset_rows:
        raise Invalid(
            f"dataset has {n_rows} rows; the limit is {settings.max_dataset_rows} "
            "(BACKPROP_MAX_DATASET_ROWS)",
            [{"loc": ["body", "inputs"], "msg": f"at most {settings.max_dataset_rows} rows"}],
        )
    for field, count in (("inputs", n_features), ("targets", n_targets)):
        if count > settings.max_features:
            raise Invalid(
                f"{field} rows have {count} columns; the limit is {settings.max_features} "
                "(BACKPROP_MAX_FEATURES)",
                [{"loc": ["body", field], "msg": f"at most {settings.max_features} columns"}],
            )


def _matrix(rows: list[list[float]], field: str) -> np.ndarray:
    width = len(rows[0])
    for index, row in enumerate(rows):
        if len(row) != width:
            raise SpecError(f"{field}[{index}]", f"has {len(row)} values; row 0 has {width}")
    return np.asarray(rows, dtype=np.float64)


@router.post(
    "",
    status_code=201,
    response_model=DatasetRead,
    responses={201: {"links": CREATED_LINKS}, **problem_responses(400, 413, 422)},
    summary="Create a dataset from rows or a generator",
    description="Rows come with `targets` (regression) or `labels` (classification). "
    "Generators of classes (all but `sine`) store labels 0 to n_classes - 1.",
)
def create_dataset(body: DatasetCreate, session: SessionDep, settings: SettingsDep) -> Any:
    labels: Labels | None = None
    targets: np.ndarray | None = None
    if body.generator is not None:
        spec = body.generator
        _check_limits(settings, spec.n_samples, 2, spec.n_classes)
        inputs, generated = generate_data(
            spec.kind, spec.n_samples, spec.noise, spec.seed, spec.n_classes
        )
        if isinstance(generated, Labels):
            labels = generated
        else:
            targets = generated
        source: dict[str, Any] = {"kind": "generator", "generator": spec.model_dump()}
    elif body.labels is not None:
        _check_limits(settings, len(body.inputs), len(body.inputs[0]), 1)
        inputs = _matrix(body.inputs, "inputs")
        if len(body.labels) != len(inputs):
            raise SpecError(
                "labels", f"has {len(body.labels)} labels; inputs has {len(inputs)} rows"
            )
        labels = Labels.from_values(body.labels, "labels")
        source = {"kind": "rows"}
    else:
        assert body.targets is not None
        _check_limits(settings, len(body.inputs), len(body.inputs[0]), len(body.targets[0]))
        inputs, targets = _matrix(body.inputs, "inputs"), _matrix(body.targets, "targets")
        if len(targets) != len(inputs):
            raise SpecError("targets", f"has {len(targets)} rows; inputs has {len(inputs)}")
        source = {"kind": "rows"}
    return queries.create_dataset(session, body.name, inputs, targets, source, labels=labels)


@router.post(
    "/csv",
    operation_id="create_dataset_from_csv",
    status_code=201,
    response_model=DatasetRead,
    responses={201: {"links": CREATED_LINKS}, **problem_responses(400, 413, 422)},
    summary="Create a dataset from an uploaded CSV file",
    description="Numeric columns with an optional header row (a first row that is not all "
    "numbers). Either the last `targets` columns are the targets (regression; the default, "
    "one column), or `label_column`, a header name or a 0-based index, holds class labels "
    "(integers, true/false or text) and every other column is a feature. A header row's "
    "names are kept as `feature_names`. Bodies up to BACKPROP_MAX_UPLOAD_BYTES.",
)
def upload_csv(
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="CSV file")],
    name: Annotated[str, Form(min_length=1, max_length=200, pattern=TEXT_PATTERN)],
    targets: Annotated[
        int | None,
        Form(ge=1, le=1000, description="How many last columns are targets (default 1)"),
    ] = None,
    label_column: Annotated[
        str | None,
        Form(
            min_length=1,
            max_length=200,
            description="The column of class labels: its header name or 0-based index",
        ),
    ] = None,
) -> Any:
    # A sync route, so it runs in the thread pool: the parser releases the GIL while it
    # works, and reads the spooled upload itself rather than a second copy of the body.
    limit = settings.max_dataset_rows
    try:
        table = read_csv(file.file, label_column=label_column, n_targets=targets, max_rows=limit)
    except TooManyRows:
        raise Invalid(
            f"dataset has more than {limit} rows; the limit is {limit} (BACKPROP_MAX_DATASET_ROWS)",
            [{"loc": ["body", "file"], "msg": f"at most {limit} rows"}],
        ) from None
    n_rows, n_features = table.inputs.shape
    n_targets = 1 if table.targets is None else table.targets.shape[1]
    _check_limits(settings, n_rows, n_features, n_targets)
    source = {"kind": "csv", "filename": file.filename}
    inputs = queries.inputs_npy(table.inputs)
    target_rows, labels, feature_names = table.targets, table.labels, table.feature_names
    # The float64 array goes before the row is written: SQLite copies the stored bytes
    # twice more while it inserts them, and the peak is what a large upload costs.
    del table
    return queries.create_dataset(
        session, name, inputs, target_rows, source, labels=labels, feature_names=feature_names
    )


@router.get(
    "",
    response_model=Page[DatasetRead],
    responses={200: {"links": LIST_LINKS}, **problem_responses(422)},
    summary="List datasets",
)
def list_datasets(session: ReadSessionDep, limit: Limit = 50, cursor: Cursor = None) -> Any:
    items, next_cursor = queries.list_datasets(session, limit, cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/{dataset_id:id}",
    response_model=DatasetRead,
    responses=problem_responses(404),
    summary="Get a dataset",
)
def get_dataset(dataset_id: DatasetId, session: ReadSessionDep) -> Any:
    return queries.get_dataset(session, dataset_id)


@router.get(
    "/{dataset_id:id}/rows",
    operation_id="list_dataset_rows",
    response_model=Page[SampleRead],
    responses={200: {"links": ROWS_LINKS}, **problem_responses(404, 422)},
    summary="List a dataset's rows (inputs and targets), a page at a time",
)
def get_rows(
    dataset_id: DatasetId, session: ReadSessionDep, limit: Limit = 50, cursor: Cursor = None
) -> Any:
    items, next_cursor = queries.samples_page(session, dataset_id, limit, cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.delete(
    "/{dataset_id:id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(404, 409),
    summary="Delete a dataset no job uses",
)
def delete_dataset(dataset_id: DatasetId, session: SessionDep) -> None:
    queries.delete_dataset(session, dataset_id)
