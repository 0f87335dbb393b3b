"""API keys: with BACKPROP_API_KEYS set, every /v1 operation needs one; probes and docs
stay open; read-only keys may only read; the plaintext keys are never kept."""

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from starlette.routing import compile_path

from service.api.app import create_app
from service.api.auth import is_read_only_post
from service.config import Settings
from tests.api.test_bad_input import assert_problem

KEY = "k3y-for-the-tests-0a1b2c3d4e5f"
READ_KEY = "read-only-k3y-9f8e7d6c5b4a"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Plausible values of every path parameter: ids that do not exist, names that could.
PATH_VALUES = {
    "dataset_id": "0123456789abcdef0123456789abcdef",
    "job_id": "0123456789abcdef0123456789abcdef",
    "name": "xor-net",
    "version": "1",
    "epoch": "10",
    "alias": "production",
}
# Everything a client could get wrong; each must be a 401 with a Bearer challenge.
BAD_AUTHORIZATION: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer not-the-key"},
    {"Authorization": f"Bearer {KEY}x"},
    {"Authorization": f"Basic {KEY}"},
    {"Authorization": f"Token {KEY}"},
    {"Authorization": KEY},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": f"Bearer {KEY} {KEY}"},
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed_settings(migrated_url: str) -> Settings:
    return Settings(database_url=migrated_url, api_keys=f"{KEY}, {READ_KEY}:read")


@pytest.fixture
def keyed(keyed_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(keyed_settings)) as test_client:
        yield test_client


def openapi(client: TestClient) -> dict[str, Any]:
    schema: dict[str, Any] = client.get("/openapi.json").raise_for_status().json()
    return schema


def v1_operations(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path with its parameters filled in, operation) of every /v1 operation
    the service's OpenAPI schema lists."""
    return [
        (method.upper(), path.format(**PATH_VALUES), operation)
        for path, operations in openapi(client)["paths"].items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
    ]


def test_every_v1_operation_refuses_a_missing_or_wrong_key(keyed: TestClient) -> None:
    operations = v1_operations(keyed)
    # The walk covers the whole API (datasets, jobs, events, models, trace), not a few.
    assert len(operations) >= 20, operations
    walked = {(method, path) for method, path, _ in operations}
    assert {("GET", f"/v1/jobs/{PATH_VALUES['job_id']}/events"), ("POST", "/v1/trace")} <= walked

    for method, path, _ in operations:
        for headers in BAD_AUTHORIZATION:
            response = keyed.request(method, path, headers=headers)
            where = f"{method} {path} with {headers}"
            assert response.status_code == 401, where
            assert response.headers["content-type"] == "application/problem+json", where
            assert response.headers["www-authenticate"].startswith("Bearer"), where


def test_every_v1_operation_admits_a_valid_key(keyed: TestClient) -> None:
    for method, path, _ in v1_operations(keyed):
        response = keyed.request(method, path, headers=bearer(KEY))

        # Past the key: the ids do not exist and the bodies are missing, so 404 or 422.
        assert response.status_code not in (401, 403), f"{method} {path}: {response.text}"
        assert response.status_code < 500, f"{method} {path}: {response.text}"


# The POST routes that change nothing, which a read-only key may call.
READ_ONLY_POSTS = {
    "predict_model",
    "evaluate_model",
    "invoke_model",
    "predict_job",
    "evaluate_job",
    "predict_model_grid",
    "predict_job_grid",
    "infer_model",
    "infer_model_version",
}


def test_a_read_only_key_reads_and_is_forbidden_to_write(keyed: TestClient) -> None:
    writes = 0
    for method, path, operation in v1_operations(keyed):
        response = keyed.request(method, path, headers=bearer(READ_KEY))
        if method in WRITE_METHODS and operation["operationId"] not in READ_ONLY_POSTS:
            writes += 1
            assert_problem(response, 403)
            assert "insufficient_scope" in response.headers["www-authenticate"]
        else:
            assert response.status_code not in (401, 403), f"{method} {path}: {response.text}"
    assert writes >= 8


def test_every_v1_operation_documents_the_bearer_scheme_and_its_errors(
    keyed: TestClient,
) -> None:
    schema = openapi(keyed)

    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for method, path, operation in v1_operations(keyed):
        assert operation.get("security") == [{"HTTPBearer": []}], f"{method} {path}"
        for status in ("401", "403"):
            content = operation["responses"][status]["content"]
            assert "application/problem+json" in content, f"{method} {path} {status}"


def test_an_open_service_does_not_claim_to_need_a_key(client: TestClient) -> None:
    schema = openapi(client)

    assert "securitySchemes" not in schema.get("components", {})
    assert all("401" not in operation["responses"] for _, _, operation in v1_operations(client))


@pytest.mark.parametrize(
    "path",
    [
        "/health",
        "/ready",
        "/metrics",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/vendor/redoc/redoc.standalone.js",
        # The dashboard's page and assets hold no data; the page asks for a key.
        "/",
        "/static/dashboard/app.js",
    ],
)
def test_probes_docs_and_dashboard_page_stay_open_with_keys_configured(
    keyed: TestClient, path: str
) -> None:
    assert keyed.get(path).status_code == 200


def test_any_other_path_needs_a_key_too(keyed: TestClient) -> None:
    # Deny by default: an unknown path says nothing about which routes exist.
    for path in ("/v1/nothing-here", "/v1", "/dashboard", "/statics"):
        response = keyed.get(path)
        assert response.status_code == 401, path
    assert keyed.get("/v1/nothing-here", headers=bearer(KEY)).status_code == 404


def test_the_key_is_checked_before_the_body_is_read(keyed: TestClient) -> None:
    # Not JSON: a route that read it first would answer 422.
    response = keyed.post(
        "/v1/datasets", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert_problem(response, 401)
    assert response.headers["connection"] == "close"


def test_a_valid_key_creates_and_reads(keyed: TestClient) -> None:
    created = keyed.post(
        "/v1/datasets",
        json={"name": "xor", "generator": {"kind": "xor", "n_samples": 4}},
        headers=bearer(KEY),
    )
    assert created.status_code == 201, created.text

    read = keyed.get(f"/v1/datasets/{created.json()['id']}", headers=bearer(READ_KEY))
    assert read.status_code == 200
    assert keyed.get("/v1/datasets", headers={"Authorization": f"bearer {KEY}"}).is_success


def test_an_open_service_warns_at_start(
    migrated_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(database_url=migrated_url))
    with caplog.at_level(logging.WARNING, logger="service.api"), TestClient(app) as open_client:
        assert open_client.get("/v1/datasets").status_code == 200

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("open to anyone" in r.getMessage() for r in warnings), caplog.text


def test_a_service_with_keys_does_not_warn(
    keyed_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(keyed_settings)
    with caplog.at_level(logging.WARNING, logger="service.api"), TestClient(app):
        pass

    assert "open to anyone" not in caplog.text


def test_the_settings_keep_no_plaintext_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKPROP_API_KEYS", f" {KEY} ,{READ_KEY}:read,")
    settings = Settings()

    assert [key.scope for key in settings.api_keys] == ["write", "read"]
    for shown in (repr(settings), str(settings), str(settings.model_dump()), str(vars(settings))):
        assert KEY not in shown
        assert READ_KEY not in shown


def test_a_malformed_key_list_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as error:
        Settings(api_keys=f"{KEY}:admin")

    assert "BACKPROP_API_KEYS" in str(error.value)
    assert KEY not in str(error.value)


def test_a_read_only_key_may_predict_evaluate_invoke_and_infer(keyed: TestClient) -> None:
    schema = openapi(keyed)
    allowed = [
        (path.format(**PATH_VALUES), operation["operationId"])
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if operation["operationId"] in READ_ONLY_POSTS
    ]
    assert {operation for _, operation in allowed} == READ_ONLY_POSTS

    for path, operation in allowed:
        response = keyed.post(path, headers=bearer(READ_KEY), json={})
        # Past the key: the model or job does not exist, or the body is incomplete.
        assert response.status_code in (400, 404, 422), f"{operation}: {response.text}"
    for method, path in (
        ("POST", "/v1/jobs"),
        ("PUT", "/v1/models/xor-net/aliases/production"),
        ("DELETE", "/v1/models/xor-net/aliases/production"),
        ("POST", "/v1/datasets"),
    ):
        assert_problem(keyed.request(method, path, headers=bearer(READ_KEY), json={}), 403)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/xor-net/predict/../../../jobs",
        "/v1/models/xor-net/predict/",
        "/v1/models/xor-net/predictx",
        "/v1/models/a/b/predict",
        "/v1/jobs/not-an-id/predict",
        "/v2/models/xor-net/infer/x",
        "/v1/models/xor-net/predict%2F..%2F..%2Fjobs",
    ],
)
def test_paths_that_only_look_like_a_read_only_post_are_refused(
    keyed: TestClient, path: str
) -> None:
    response = keyed.post(path, headers=bearer(READ_KEY), json={})

    assert response.status_code == 403, response.text


def test_no_other_post_route_matches_a_read_only_posts_paths(keyed: TestClient) -> None:
    """The middleware matches the read-only routes' templates alone: no other POST route
    may match the same paths, or a read key would reach it."""
    schema = openapi(keyed)
    posts = {
        path: operation["operationId"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method == "post"
    }
    for path, operation_id in posts.items():
        concrete = path.format(**PATH_VALUES)
        if operation_id not in READ_ONLY_POSTS:
            assert not is_read_only_post(concrete), path
        else:
            others = [
                p
                for p, o in posts.items()
                if o != operation_id and compile_path(p)[0].fullmatch(concrete)
            ]
            assert others == [], path
