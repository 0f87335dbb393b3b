"""The OpenAPI schema as FastAPI writes it, with what it gets wrong about this service put
right: /openapi.json, /docs and the schemathesis tests all read this one."""

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI

from service.api.auth import document_keys
from service.api.problems import PROBLEM_JSON, is_inference_v2

NULL = {"type": "null"}
COMPONENTS = "#/components/schemas/"
FORM_PREFIX = "Body_"


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


def install(app: FastAPI, is_open: Callable[[str], bool] | None = None) -> None:
    """Make `app.openapi` return the corrected schema; with `is_open` (the API keys' test
    of a path that needs none), the bearer scheme on every other operation."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI's schema, cached until routes change; the corrections are idempotent.
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for path, operations in schema.get("paths", {}).items():
            if is_inference_v2(path):
                _no_validation_error(operations)
        for operation in _operations(schema):
            _problems_as_problem_json(operation)
            _optional_parameters_not_null(operation)
            _request_body_as_component(operation, components)
        _components_named_by_title(schema, components)
        if is_open is not None:
            document_keys(schema, is_open)
        # Renaming rebuilt the components: look them up again.
        _unreferenced_validation_error_dropped(schema, schema["components"]["schemas"])
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _operations(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for operations in schema.get("paths", {}).values():
        yield from operations.values()


def _no_validation_error(operations: dict[str, Any]) -> None:
    """The Open Inference Protocol's routes answer invalid requests 400 `{"error"}`, which
    they declare; FastAPI adds its default 422 to every route with parameters."""
    for operation in operations.values():
        response = operation.get("responses", {}).get("422", {})
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        if schema.get("$ref") == f"{COMPONENTS}HTTPValidationError":
            del operation["responses"]["422"]


def _unreferenced_validation_error_dropped(
    schema: dict[str, Any], components: dict[str, Any]
) -> None:
    """FastAPI's validation-error schemas, once no operation refers to them."""
    document = str(schema.get("paths", {}))
    if f"{COMPONENTS}HTTPValidationError" not in document:
        components.pop("HTTPValidationError", None)
        if f"{COMPONENTS}ValidationError" not in str(components):
            components.pop("ValidationError", None)


def _problems_as_problem_json(operation: dict[str, Any]) -> None:
    """Problem responses are sent as application/problem+json, but FastAPI files a
    response's `model` under the route's media type, application/json."""
    for response in operation.get("responses", {}).values():
        content = response.get("content", {})
        if PROBLEM_JSON in content and "application/json" in content:
            content[PROBLEM_JSON] = content.pop("application/json")


def _request_body_as_component(operation: dict[str, Any], components: dict[str, Any]) -> None:
    """A body declared inline (`openapi_extra`, a union of models) goes into the components
    under its title, as FastAPI files the models it reads itself: a generated client then
    names it after the model (`PredictRequest`), not after the operation's path."""
    for content in operation.get("requestBody", {}).get("content", {}).values():
        body = content.get("schema", {})
        if not body or "$ref" in body:
            continue
        name = body["title"]
        # pydantic's `#/$defs/X`, in a schema of its own, is the document's component X.
        definitions = body.pop("$defs", {})
        local = {f"#/$defs/{defined}": f"{COMPONENTS}{defined}" for defined in definitions}
        for defined, definition in definitions.items():
            components.setdefault(defined, _refs_renamed(definition, local))
        components[name] = _refs_renamed(body, local)
        content["schema"] = {"$ref": f"{COMPONENTS}{name}"}


def _components_named_by_title(schema: dict[str, Any], components: dict[str, Any]) -> None:
    """Each schema filed under its title, the name a generated client gives it: pydantic
    files `Page[DatasetRead]` as `Page_DatasetRead_` whatever its title (`DatasetPage`), and
    FastAPI a form body as `Body_<operation id>` (it becomes `<OperationId>Form`)."""
    renames = {}
    for name, component in components.items():
        if name.startswith(FORM_PREFIX):
            words = name.removeprefix(FORM_PREFIX).split("_")
            component["title"] = "".join(word.capitalize() for word in words) + "Form"
        title = component.get("title", name)
        if title != name:
            assert title not in components, f"two schemas are titled {title}"
            renames[f"{COMPONENTS}{name}"] = f"{COMPONENTS}{title}"
    if not renames:
        return
    for ref, renamed in renames.items():
        components[renamed.removeprefix(COMPONENTS)] = components.pop(ref.removeprefix(COMPONENTS))
    schema.update(_refs_renamed(schema, renames))


def _refs_renamed(schema: Any, renames: dict[str, str]) -> Any:
    """`schema` with every `$ref` found in `renames` replaced."""
    if isinstance(schema, dict):
        return {
            key: renames.get(value, value)
            if key == "$ref" and isinstance(value, str)
            else _refs_renamed(value, renames)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_refs_renamed(item, renames) for item in schema]
    return schema


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
