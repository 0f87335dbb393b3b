"""The OpenAPI page is a usable explorer and a good source for generated clients:
operation ids and schema names chosen, examples everywhere, errors declared."""

import json
import re
from typing import Any

import jsonschema_rs
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from service.api.app import create_app
from service.api.schemas import PredictRequest

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
PASCAL_CASE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
# Bodies that are not JSON documents: the Prometheus text, the job's event stream and the
# model files (binary: the native zip and ONNX).
NOT_JSON = {
    "text/plain",
    "text/csv",
    "application/openmetrics-text",
    "text/event-stream",
    "application/vnd.backprop.model+zip",
    "application/onnx",
}
# Multipart forms carry a file: the page shows their fields, not an example.
FORMS = {"CreateDatasetFromCsvForm", "UploadModelVersionForm"}


def openapi() -> dict[str, Any]:
    schema: dict[str, Any] = create_app().openapi()
    return schema


def operations(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]


def component(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    found: dict[str, Any] = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return found


def bodies(operation: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(what, body schema) of the request and every response, JSON ones only."""
    found = []
    parts = [("request", operation.get("requestBody", {}))]
    parts += [(f"response {code}", r) for code, r in operation["responses"].items()]
    for what, part in parts:
        for media_type, content in part.get("content", {}).items():
            if media_type not in NOT_JSON:
                found.append((f"{what} {media_type}", content.get("schema", {})))
    return found


def referenced(schema: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """Component names that a request or response body is made of (one level)."""
    refs = []
    for content in body.get("content", {}).values():
        target = content.get("schema", {})
        if "$ref" in target:
            refs.append(target["$ref"])
    return refs


def test_operation_ids_are_unique_snake_case_names() -> None:
    ids = [operation["operationId"] for _, operation in operations(openapi())]

    assert len(ids) == len(set(ids)), sorted(ids)
    assert [i for i in ids if not SNAKE_CASE.match(i)] == []
    assert {"create_dataset", "list_jobs", "predict_model", "predict_job"} <= set(ids)
    # FastAPI's default would have appended the path and the method.
    assert not [i for i in ids if "v1" in i or i.endswith(("_get", "_post"))]


def test_every_body_is_a_named_schema() -> None:
    schema = openapi()
    inline = [
        f"{label} {what}"
        for label, operation in operations(schema)
        for what, body in bodies(operation)
        if set(body) != {"$ref"}
    ]
    names = list(schema["components"]["schemas"])

    assert inline == []
    assert [name for name in names if not PASCAL_CASE.match(name)] == []
    for name, definition in schema["components"]["schemas"].items():
        assert definition.get("title", name) == name


def test_a_dataset_is_made_from_rows_or_from_a_generator() -> None:
    schema = openapi()
    body = schema["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]["application/json"]
    dataset = component(schema, body["schema"]["$ref"])

    assert dataset["oneOf"] == [
        {"$ref": "#/components/schemas/DatasetFromRows"},
        {"$ref": "#/components/schemas/DatasetFromGenerator"},
    ]
    rows = component(schema, "DatasetFromRows")
    assert set(rows["required"]) == {"name", "inputs"}
    assert {"targets", "labels"} <= set(rows["properties"])
    assert "either `targets`" in rows["description"]
    assert set(component(schema, "DatasetFromGenerator")["required"]) == {"name", "generator"}


def test_bounds_are_json_schema_keywords() -> None:
    """pydantic writes bounds it cannot place as `ge`/`le`, which JSON Schema ignores."""
    misplaced: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            misplaced.extend(f"{where}.{key}" for key in ("ge", "gt", "le", "lt") if key in node)
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]")

    walk(openapi(), "")

    assert misplaced == []


def test_every_route_declares_its_error_responses_as_problem_json() -> None:
    schema = openapi()
    for path, operations_at_path in schema["paths"].items():
        for method, operation in operations_at_path.items():
            if path in ("/health", "/ready", "/metrics", "/v2/health/live", "/v2/health/ready"):
                continue
            errors = {code: r for code, r in operation["responses"].items() if code.startswith("4")}
            assert errors, f"{method.upper()} {path} declares no 4xx response"
            for code, response in errors.items():
                if code == "422" and "application/problem+json" not in response.get("content", {}):
                    raise AssertionError(f"{method.upper()} {path} 422 is not problem+json")


def test_every_request_and_response_model_has_an_example() -> None:
    schema = openapi()
    missing = []
    for label, operation in operations(schema):
        parts = [operation.get("requestBody", {})]
        parts += [r for code, r in operation["responses"].items() if code.startswith("2")]
        for part in parts:
            for ref in referenced(schema, part):
                model = component(schema, ref)
                page_items = model.get("properties", {}).get("items", {}).get("items", {})
                if "$ref" in page_items:
                    model = component(schema, page_items["$ref"])
                # A choice of bodies: each has its examples.
                models = [component(schema, o["$ref"]) for o in model.get("oneOf", [])] or [model]
                for each in models:
                    if not each.get("examples") and each.get("title") not in FORMS:
                        missing.append(f"{label}: {each.get('title', ref)}")
    assert not missing, missing


def test_docs_and_schema_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "Backprop Service"


def test_version_or_alias_not_both_is_in_the_schema_as_the_model_checks_it() -> None:
    predict = jsonschema_rs.validator_for(component(openapi(), "PredictRequest"))
    cases: list[dict[str, Any]] = [
        {"inputs": [[1]], "version": 1, "alias": "production"},
        {"inputs": [[1]], "version": 1, "alias": None},
        {"inputs": [[1]], "version": None, "alias": "production"},
        {"inputs": [[1]], "alias": "production"},
        {"inputs": [[1]]},
    ]

    answers = [(predict.is_valid(body), accepts(PredictRequest, body)) for body in cases]

    assert answers == [(False, False)] + [(True, True)] * 4


def accepts(model: type[BaseModel], body: dict[str, Any]) -> bool:
    try:
        model.model_validate_json(json.dumps(body))
    except ValidationError:
        return False
    return True


def test_history_says_losses_are_scaled_and_mae_r2_in_raw_units() -> None:
    schema = openapi()
    history = schema["paths"]["/v1/jobs/{job_id}/history"]["get"]["description"]
    point = component(schema, "HistoryPoint")

    for text in (history, point["description"]):
        assert "`loss` and `val_loss`" in text or "`loss`, `val_loss`" in text
        assert "raw units" in text
    assert {"val_precision", "val_recall", "val_f1", "mae", "r2", "val_mae", "val_r2"} <= set(
        point["properties"]
    )


def test_deletes_and_patches_are_documented_with_their_conflicts_and_bounds() -> None:
    schema = openapi()
    ids = {
        f"{method.upper()} {path}": operation["operationId"]
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }
    expected = {
        "DELETE /v1/jobs/{job_id}": "delete_job",
        "PATCH /v1/jobs/{job_id}": "update_job",
        "DELETE /v1/models/{name}": "delete_model",
        "PATCH /v1/models/{name}": "update_model",
        "DELETE /v1/models/{name}/versions/{version}": "delete_model_version",
        "PATCH /v1/models/{name}/versions/{version}": "update_model_version",
    }
    assert {label: ids.get(label) for label in expected} == expected
    for label in expected:
        method, path = label.split(" ")
        operation = schema["paths"][path][method.lower()]
        assert operation["summary"] and operation["description"], label
        if method == "DELETE":
            assert {"204", "404", "409"} <= set(operation["responses"]), label
        else:
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/MetadataPatch"}, label

    patch = component(schema, "MetadataPatch")
    assert patch["examples"] and "merge patch (RFC 7386)" in patch["description"]
    tags = next(o for o in patch["properties"]["tags"]["anyOf"] if o.get("type") == "object")
    assert tags["maxProperties"] == 50 and tags["additionalProperties"] is False
    assert list(tags["patternProperties"]) == ["^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"]
    create = component(schema, "JobCreate")
    assert create["properties"]["tags"]["maxProperties"] == 50
    assert create["examples"][0]["tags"]
    for read in ("JobRead", "ModelRead", "ModelVersionRead"):
        assert {"description", "tags"} <= set(component(schema, read)["properties"]), read
    for path in ("/v1/jobs", "/v1/models", "/v1/models/{name}/versions"):
        (tag,) = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "tag"]
        assert tag["schema"]["maxItems"] == 10 and tag["schema"]["items"]["pattern"]
        assert "all must match" in tag["description"]
    force = schema["paths"]["/v1/models/{name}"]["delete"]["parameters"]
    assert [p["name"] for p in force if p["in"] == "query"] == ["force"]
