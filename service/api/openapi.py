"""The OpenAPI schema as FastAPI writes it, with what it gets wrong about this service put
right: /openapi.json, /docs and the schemathesis tests all read this one."""

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from service.api.problems import PROBLEM_JSON

NULL = {"type": "null"}


def link(
    method: str,
    path: str,
    parameters: dict[str, str] | None = None,
    body: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An OpenAPI link from a response to the operation `method path`: `parameters` and
    `body` fields hold runtime expressions such as `$response.body#/id`."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    definition: dict[str, Any] = {"operationRef": f"#/paths/{pointer}/{method.lower()}"}
    if parameters:
        definition["parameters"] = parameters
    if body:
        definition["requestBody"] = body
    return definition


def install(app: FastAPI) -> None:
    """Make `app.openapi` return the corrected schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI's schema, cached until routes change; the corrections are idempotent.
        schema = generate()
        for operation in _operations(schema):
            _problems_as_problem_json(operation)
            _optional_parameters_not_null(operation)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _operations(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for operations in schema.get("paths", {}).values():
        yield from operations.values()


def _problems_as_problem_json(operation: dict[str, Any]) -> None:
    """Problem responses are sent as application/problem+json, but FastAPI files a
    response's `model` under the route's media type, application/json."""
    for response in operation.get("responses", {}).values():
        content = response.get("content", {})
        if PROBLEM_JSON in content and "application/json" in content:
            content[PROBLEM_JSON] = content.pop("application/json")


def _optional_parameters_not_null(operation: dict[str, Any]) -> None:
    """An optional query or header parameter is left out to mean none. FastAPI's schema
    of `X | None` also allows null, which on the wire is the string "null": refused."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        options = schema.get("anyOf", [])
        if parameter.get("required") or NULL not in options:
            continue
        del schema["anyOf"]
        if "default" in schema and schema["default"] is None:
            del schema["default"]
        rest = [option for option in options if option != NULL]
        if len(rest) == 1:
            schema.update(rest[0])
        else:
            schema["anyOf"] = rest
