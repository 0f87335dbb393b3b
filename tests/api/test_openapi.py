"""The OpenAPI page is a usable explorer: examples everywhere, errors declared."""

from typing import Any

from fastapi.testclient import TestClient

from service.api.app import create_app


def openapi() -> dict[str, Any]:
    schema: dict[str, Any] = create_app().openapi()
    return schema


def component(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    found: dict[str, Any] = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return found


def referenced(schema: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """Component names that a request or response body is made of (one level)."""
    refs = []
    for content in body.get("content", {}).values():
        target = content.get("schema", {})
        if "$ref" in target:
            refs.append(target["$ref"])
    return refs


def test_every_route_declares_its_error_responses_as_problem_json() -> None:
    schema = openapi()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path in ("/health", "/ready", "/metrics"):
                continue
            errors = {code: r for code, r in operation["responses"].items() if code.startswith("4")}
            assert errors, f"{method.upper()} {path} declares no 4xx response"
            for code, response in errors.items():
                if code == "422" and "application/problem+json" not in response.get("content", {}):
                    raise AssertionError(f"{method.upper()} {path} 422 is not problem+json")


def test_every_request_and_response_model_has_an_example() -> None:
    schema = openapi()
    missing = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            bodies = [operation.get("requestBody", {})]
            bodies += [r for code, r in operation["responses"].items() if code.startswith("2")]
            for body in bodies:
                for ref in referenced(schema, body):
                    model = component(schema, ref)
                    page_items = model.get("properties", {}).get("items", {}).get("items", {})
                    if "$ref" in page_items:
                        model = component(schema, page_items["$ref"])
                    if not model.get("examples") and not ref.endswith(
                        "Body_upload_csv_v1_datasets_csv_post"
                    ):
                        missing.append(f"{method.upper()} {path}: {ref}")
    assert not missing, missing


def test_docs_and_schema_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "Backprop Service"
