"""Descriptions and tags on jobs, models and versions: set, merged by PATCH, shown in
reads, and filtering the lists page by page."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from tests.api.test_bad_input import assert_problem
from tests.api.test_deletes import XOR_JOB, train
from tests.helpers import XOR_DATASET, row_counts


def pages(client: TestClient, path: str, params: list[tuple[str, Any]]) -> list[Any]:
    """Every item of a list, fetched one per page by following its cursors."""
    found: list[Any] = []
    cursor = None
    while True:
        page_params = params + [("limit", 1)] + ([("cursor", cursor)] if cursor else [])
        page = client.get(path, params=page_params).raise_for_status().json()
        found += page["items"]
        if (cursor := page["next_cursor"]) is None:
            return found


def submit(client: TestClient, dataset_id: str, **fields: Any) -> dict[str, Any]:
    body = {**XOR_JOB, "dataset_id": dataset_id, **fields}
    job: dict[str, Any] = client.post("/v1/jobs", json=body).raise_for_status().json()
    return job


@pytest.fixture
def dataset_id(client: TestClient) -> str:
    return str(client.post("/v1/datasets", json=XOR_DATASET).json()["id"])


def test_a_job_is_created_with_a_description_and_tags_and_shows_them(
    client: TestClient, dataset_id: str
) -> None:
    job = submit(
        client,
        dataset_id,
        description="first try\nwith notes",
        tags={"team": "vision", "k.v/x-1": ""},
    )
    plain = submit(client, dataset_id)

    read = client.get(f"/v1/jobs/{job['id']}").json()
    assert read["description"] == "first try\nwith notes"
    assert read["tags"] == {"team": "vision", "k.v/x-1": ""}
    assert (plain["description"], plain["tags"]) == (None, {})


def test_patch_merges_tags_and_replaces_the_description(
    client: TestClient, dataset_id: str
) -> None:
    job_id = submit(client, dataset_id, description="old", tags={"a": "1", "b": "2"})["id"]

    merged = client.patch(f"/v1/jobs/{job_id}", json={"tags": {"b": None, "c": "3"}})
    assert merged.status_code == 200, merged.text
    assert merged.json()["tags"] == {"a": "1", "c": "3"}
    assert merged.json()["description"] == "old"

    described = client.patch(f"/v1/jobs/{job_id}", json={"description": "new"}).json()
    assert (described["description"], described["tags"]) == ("new", {"a": "1", "c": "3"})
    cleared = client.patch(f"/v1/jobs/{job_id}", json={"description": None, "tags": None}).json()
    assert (cleared["description"], cleared["tags"]) == (None, {})
    assert client.get(f"/v1/jobs/{job_id}").json()["tags"] == {}
    # Removing a key that is not there is no error; an empty patch changes nothing.
    assert client.patch(f"/v1/jobs/{job_id}", json={"tags": {"gone": None}}).status_code == 200
    assert client.patch(f"/v1/jobs/{job_id}", json={}).json()["tags"] == {}


def test_a_finished_job_a_model_and_a_version_take_patches(
    client: TestClient, settings: Settings
) -> None:
    job_id = train(client, settings, "xor", tags={"run": "1"})
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"

    job = client.patch(f"/v1/jobs/{job_id}", json={"tags": {"kept": "yes"}}).json()
    model = client.patch(
        "/v1/models/xor", json={"description": "XOR nets", "tags": {"team": "a"}}
    ).json()
    version = client.patch(
        "/v1/models/xor/versions/1", json={"description": "the first", "tags": {"stage": "dev"}}
    ).json()

    assert job["tags"] == {"run": "1", "kept": "yes"}
    assert (model["description"], model["tags"], model["latest_version"]) == (
        "XOR nets",
        {"team": "a"},
        1,
    )
    assert (version["description"], version["tags"], version["epoch"]) == (
        "the first",
        {"stage": "dev"},
        20,
    )
    assert client.get("/v1/models/xor").json()["tags"] == {"team": "a"}
    assert client.get("/v1/models/xor/versions/1").json()["description"] == "the first"
    assert client.get("/v1/models/xor/versions").json()["items"][0]["tags"] == {"stage": "dev"}
    assert client.get("/v1/models").json()["items"][0]["description"] == "XOR nets"
    for path in ("/v1/models/nope", "/v1/models/xor/versions/2", "/v1/models/nope/versions/1"):
        assert_problem(client.patch(path, json={"tags": {"a": "b"}}), 404)
    assert_problem(client.patch("/v1/jobs/" + "0" * 32, json={}), 404)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"tags": {"": "x"}}, ["body", "tags"]),
        ({"tags": {"has space": "x"}}, ["body", "tags"]),
        ({"tags": {"a:b": "x"}}, ["body", "tags"]),
        ({"tags": {"k" * 65: "x"}}, ["body", "tags"]),
        ({"tags": {"k": "v" * 257}}, ["body", "tags", "k"]),
        ({"tags": {"k": "two\nlines"}}, ["body", "tags", "k"]),
        ({"tags": {"k": 1}}, ["body", "tags", "k"]),
        ({"tags": {f"k{i}": "v" for i in range(51)}}, ["body", "tags"]),
        ({"tags": ["a"]}, ["body", "tags"]),
        ({"description": "d" * 4001}, ["body", "description"]),
        ({"description": "nul\x00"}, ["body", "description"]),
        ({"colour": "red"}, ["body", "colour"]),
    ],
)
def test_bad_metadata_is_422_naming_the_field_and_writes_nothing(
    client: TestClient, settings: Settings, dataset_id: str, body: dict[str, Any], loc: list[Any]
) -> None:
    job_id = submit(client, dataset_id)["id"]
    before = row_counts(settings.database_url)

    created = client.post("/v1/jobs", json={**XOR_JOB, "dataset_id": dataset_id, **body})
    patched = client.patch(f"/v1/jobs/{job_id}", json=body)

    for response in (created, patched):
        problem = assert_problem(response, 422)
        assert problem["errors"][0]["loc"][: len(loc)] == loc, problem
    assert row_counts(settings.database_url) == before
    assert client.get(f"/v1/jobs/{job_id}").json()["tags"] == {}


def test_a_patch_that_would_leave_too_many_tags_is_422_and_changes_nothing(
    client: TestClient, dataset_id: str
) -> None:
    job_id = submit(client, dataset_id, tags={f"old{i}": "v" for i in range(30)})["id"]

    response = client.patch(
        f"/v1/jobs/{job_id}", json={"tags": {f"new{i}": "v" for i in range(21)}}
    )

    assert assert_problem(response, 422, ["body", "tags"])["detail"].startswith(
        "the patch would leave 51 tags"
    )
    assert len(client.get(f"/v1/jobs/{job_id}").json()["tags"]) == 30
    # Removing as many as it adds keeps it within the bound.
    swap = {**{f"old{i}": None for i in range(21)}, **{f"new{i}": "v" for i in range(21)}}
    assert len(client.patch(f"/v1/jobs/{job_id}", json={"tags": swap}).json()["tags"]) == 30


def test_jobs_filter_by_every_tag_given_across_pages(client: TestClient, dataset_id: str) -> None:
    tags = [
        {"team": "a", "stage": "dev"},
        {"team": "b", "stage": "dev"},
        {"team": "a"},
        {"team": "a", "stage": "dev", "extra": "x"},
        {"team": "a", "stage": "prod"},
        {"team": "a", "stage": "dev"},
        {},
    ]
    ids = [submit(client, dataset_id, tags=t)["id"] for t in tags]

    def all_pages(params: list[tuple[str, Any]]) -> list[str]:
        return [job["id"] for job in pages(client, "/v1/jobs", params)]

    newest_first = list(reversed(ids))
    team_a_dev = all_pages([("tag", "team:a"), ("tag", "stage:dev")])
    assert team_a_dev == [i for i in newest_first if i in {ids[0], ids[3], ids[5]}]
    assert all_pages([("tag", "team:a")]) == [
        i for i in newest_first if i in set(ids) - {ids[1], ids[6]}
    ]
    assert all_pages([("tag", "team:a"), ("tag", "team:b")]) == []
    assert all_pages([("tag", "extra:x"), ("status", "queued")]) == [ids[3]]
    assert all_pages([("tag", "stage:de")]) == []


def test_models_and_versions_filter_by_tags_across_pages(
    client: TestClient, settings: Settings
) -> None:
    for name in ("m1", "m2", "m3"):
        train(client, settings, name)
    train(client, settings, "m1")
    train(client, settings, "m1")
    client.patch("/v1/models/m1", json={"tags": {"team": "a"}}).raise_for_status()
    client.patch("/v1/models/m3", json={"tags": {"team": "a", "x": "y"}}).raise_for_status()
    for version in (1, 3):
        client.patch(f"/v1/models/m1/versions/{version}", json={"tags": {"stage": "prod"}})

    def names(params: list[tuple[str, Any]]) -> list[str]:
        return [model["name"] for model in pages(client, "/v1/models", params)]

    def versions(params: list[tuple[str, Any]]) -> list[int]:
        return [v["version"] for v in pages(client, "/v1/models/m1/versions", params)]

    assert names([("tag", "team:a")]) == ["m1", "m3"]
    assert names([("tag", "team:a"), ("tag", "x:y")]) == ["m3"]
    assert names([("tag", "x:z")]) == []
    assert versions([("tag", "stage:prod")]) == [3, 1]
    assert versions([]) == [3, 2, 1]


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/models", "/v1/models/m/versions"])
@pytest.mark.parametrize("bad", ["nocolon", ":value", "sp ace:v", "k:line\nbreak", "k" * 65 + ":v"])
def test_a_bad_tag_filter_is_422_naming_tag(client: TestClient, path: str, bad: str) -> None:
    response = client.get(path, params={"tag": bad})

    problem = assert_problem(response, 422, ["query", "tag", 0])
    assert "key:value" in problem["errors"][0]["msg"]


def test_more_than_ten_tag_filters_are_refused(client: TestClient) -> None:
    response = client.get("/v1/jobs", params={"tag": [f"k{i}:v" for i in range(11)]})

    assert_problem(response, 422, ["query", "tag"])
